"""`make demo`'s last step: serve the demo workspace for a moment and talk to it over both APIs.

Starts `wechat-avatar serve` on a free loopback port, sends one request through the OpenAI-compatible
API and one through the native per-friend API, prints both replies, stops the server, and prints the
commands that keep `serve` and `web` running. Stdlib only: this is what any client would send.

    python scripts/serve_demo.py --workspace demo/workspace [--config configs/demo.yaml] [--as 胡三行]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STARTUP_S = 180  # loading a model on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return dict(json.load(response))


def wait_ready(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: wechat-avatar serve exited with code {server.returncode} before it was ready")
        try:
            if call(f"{base}/healthz", timeout=2).get("model_loaded"):
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"error: wechat-avatar serve was not ready within {STARTUP_S} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--as", dest="friend", default="胡三行", help="the friend who speaks")
    parser.add_argument(
        "--cli",
        default=shutil.which("wechat-avatar") or f"{sys.executable} -m wechat_avatar",
        help="how to run the CLI (a command line)",
    )
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [*shlex.split(args.cli), "serve", "--workspace", str(args.workspace), "--port", str(port)]
    if args.config:
        command += ["--config", str(args.config)]
    print(f"$ {' '.join(command)}", flush=True)
    server = subprocess.Popen(command)
    try:
        wait_ready(server, base)
        said = "晚上吃啥"
        openai = call(f"{base}/v1/chat/completions", {
            "model": "wechat-avatar", "user": args.friend, "max_tokens": 48,
            "messages": [{"role": "user", "content": said}]})  # fmt: skip
        print(f"\nOpenAI API  POST /v1/chat/completions  {args.friend}: {said}")
        print(f"  -> {openai['choices'][0]['message']['content']!r}  (usage {openai['usage']})")
        said = "周末去爬山不"
        native = call(f"{base}/v1/avatar/reply", {"friend": args.friend, "message": said, "max_tokens": 48})
        print(f"native API  POST /v1/avatar/reply  {args.friend}: {said}")
        print(f"  -> bubbles {native['bubbles']}  (usage {native['usage']})")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"error: the server answered {error.code}: {error.read().decode(errors='replace')}") from None
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    config = f" --config {args.config}" if args.config else ""
    print(f"\nserver stopped. To keep the avatar running for friends (both at once: make serve):\n"
          f"  wechat-avatar serve --workspace {args.workspace}{config} --port 8000\n"
          f"  wechat-avatar web --api http://127.0.0.1:8000 --port 8501  # open http://127.0.0.1:8501")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
