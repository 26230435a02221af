"""Loopback plumbing the channel tests share: a uvicorn thread, a real serve, a real `connect` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
import yaml

from wechat_avatar.config import ServeConfig
from wechat_avatar.serve.app import Settings, build_app
from wechat_avatar.serve.engine import Engine
from wechat_avatar.serve.friends import Friends
from wechat_avatar.workspace import Workspace

# sampled with a fixed seed: the tiny model's greedy replies are mostly empty
SERVE = {"temperature": 1.0, "max_new_tokens": 24, "seed": 7, "batch_wait_ms": 5.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(app: Any) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def real_serve(workspace: Workspace, engine: Engine, **serve: Any) -> Iterator[str]:
    """serve's real app and engine (the tiny model) on loopback."""
    settings = Settings(ServeConfig(**{**SERVE, **serve}), workspace.serve_state, Friends.of(workspace))
    with running(build_app(settings, engine)) as url:
        yield url


def said_to(serve: str, friend: str) -> list[dict[str, Any]]:
    """What serve remembers of a friend: the model was called once per friend turn in it."""
    return list(httpx2.get(f"{serve}/v1/avatar/friends/{friend}/history", timeout=30).json()["messages"])


def turns(serve: str, friend: str) -> int:
    return sum(m["role"] == "friend" for m in said_to(serve, friend))


def avatar_bubbles(serve: str, friend: str) -> list[str]:
    """The avatar's bubbles of its last turn with the friend."""
    kept = said_to(serve, friend)
    last = max((i for i, m in enumerate(kept) if m["role"] == "friend"), default=-1)
    return [m["text"] for m in kept[last + 1 :]]


def turn_bubbles(serve: str, friend: str) -> list[list[str]]:
    """The avatar's bubbles of each turn with the friend, oldest first."""
    out: list[list[str]] = []
    for m in said_to(serve, friend):
        if m["role"] == "friend":
            out.append([])
        elif out:
            out[-1].append(m["text"])
    return out


class Connect:
    """A real `wechat-avatar connect CHANNEL` process with a config written for it."""

    def __init__(self, workspace: Path, channel: str, channels: dict[str, Any], *args: str) -> None:
        self.workspace, self.channel = workspace, channel
        self.config = workspace.parent / f"connect-{channel}-{time.monotonic_ns()}.yaml"
        self.config.write_text(yaml.safe_dump({"channels": channels}, allow_unicode=True), encoding="utf-8")
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "wechat_avatar", "connect", self.channel, "-w", str(self.workspace),
                "-c", str(self.config), *self.args]  # fmt: skip

    def run(self, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run to the end (for a start that must fail)."""
        return subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout, env=_env())

    def __enter__(self) -> Connect:
        self.proc = subprocess.Popen(self.command(), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=_env())  # fmt: skip
        return self

    def wait_for_port(self, port: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"connect exited {self.proc.returncode}: {self.proc.communicate()[1]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("connect did not start listening")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            _, self.stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
        assert "Traceback" not in self.stderr, self.stderr


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("WECHAT_AVATAR_DEBUG", None)
    return env


def journal(workspace: Path) -> list[dict[str, Any]]:
    path = Workspace(workspace).channel_log
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@contextmanager
def slow(upstream: str, delay_s: float) -> Iterator[str]:
    """A proxy in front of serve that answers every request `delay_s` late: a model too slow for a window."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = httpx2.AsyncClient(base_url=upstream, timeout=60)

    async def forward(request: Request) -> Response:
        path = request.url.path
        if path == "/v1/avatar/reply":
            await asyncio.sleep(delay_s)
        body = await request.body()
        answer = await client.request(request.method, path, content=body or None,
                                      headers={"content-type": "application/json"} if body else {})  # fmt: skip
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])
    with running(app) as url:
        yield url
