"""The vLLM backend's cost: vLLM asked directly against `serve --backend vllm` in front of it, in one run.

    python benchmarks/vllm_backend.py --vllm-python .venv-vllm/bin/python \\
        [--workspace demo/workspace] [--config configs/demo.yaml] [--clients 1 8] [--replies 16] [--tokens 32]
        [--temperature 0]

One vLLM (started with the command `serve --backend vllm` prints: the workspace's base + its SFT
adapter as LoRA module `sft`, float32) and one `wechat-avatar serve --backend vllm` in front of it
(no rate limit). Each client sends --replies requests one after another, --tokens tokens at most:
  direct:  POST vLLM /v1/completions with the body our backend would send (the same prompt ids,
           stops and sampling: VLLMEngine.request), so only our server is missing;
  openai:  POST our /v1/chat/completions (no history kept);
  native:  POST our /v1/avatar/reply: the history is read and written every time, but the front
           runs with dataset.context_window 1, so the prompt stays the one message.
Client i speaks as friend 胡三行<i> on every side (our API runs one friend's turns one at a time).
The same conversation on every side (the first of TEXTS whose reply runs the full --tokens, else the
longest), greedy or sampled with seed 0 (vLLM's seeded sampling repeats), so every side generates
the same tokens. Prints replies/s and generated tokens/s (vLLM's usage) for 1 and 8 concurrent
clients, ours/direct (our overhead), 8 clients/1 (what vLLM's batching gives), and the CPU time our
front (the `serve` process) spends per reply: steadier than wall-clock figures when other work
shares the cores. The workspace must hold a trained adapter on a base whose attention head size
vLLM's CPU kernels take (32, 64, ...: the tiny-cpu preset's is 64); `make demo` makes one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import yaml

from wechat_avatar.config import load_config
from wechat_avatar.models.load import resolve
from wechat_avatar.serve.engine import Persona, Sampling
from wechat_avatar.serve.vllm import VLLMEngine, start_command
from wechat_avatar.workspace import Workspace

FRIEND = "胡三行"
# the benchmark's message: the first of these whose reply runs the full --tokens (a reply that stops
# after 3 tokens measures requests, not generation)
TEXTS = ["周末去爬山不", "在吗", "晚上吃啥", "明天几点出发", "哈哈哈哈", "你到哪了", "今天好累", "那个电影好看吗"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    conn.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    if response.status != 200:
        sys.exit(f"FAILED: {url}{path} answered {response.status}: {data}")
    return data


@contextmanager
def started(args: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """The server up (its health URL answers 200); yields its pid."""
    with log.open("w") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    host, port = health.removeprefix("http://").split("/")[0].split(":")
    try:
        for _ in range(1200):
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.request("GET", "/" + health.split("/", 3)[3])
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                sys.exit(f"FAILED: {args[0]} exited:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server.pid
    finally:
        server.terminate()
        server.wait(60)


def measure(clients: int, replies: int, ask: Callable[[int], int]) -> tuple[float, float]:
    """(replies/s, generated tokens/s) with `clients` threads each asking `replies` times in a row."""

    def client(i: int) -> int:
        return sum(ask(i) for _ in range(replies))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    return clients * replies / wall, tokens / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-python", type=Path, default=Path(".venv-vllm/bin/python"))
    parser.add_argument("--workspace", type=Path, default=Path("demo/workspace"))
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--replies", type=int, default=16, help="requests per client, one after another")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy; else sampled with seed 0 on "
                        "every side (vLLM's seeded sampling repeats: the same tokens everywhere)")  # fmt: skip
    a = parser.parse_args()
    ws, cfg = Workspace(a.workspace.resolve()), load_config(a.config)
    if ws.trained_adapter() is None or not a.vllm_python.is_file():
        sys.exit("needs a workspace with a trained adapter (`make demo`) and vLLM's venv (`make vllm-venv`)")
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    adapter = work / "sft"  # a copy whose base_model_name_or_path is absolute, as vLLM needs
    shutil.copytree(ws.trained_adapter(), adapter, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(Path(resolve(ws, cfg.model)).resolve())
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    vllm, ours = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    serve = {"vllm_url": vllm, "backend": "vllm", "requests_per_minute": 0, "max_concurrent": 64}
    cfg.serve = cfg.serve.model_copy(update=serve)
    command = shlex.split(start_command(resolve(ws, cfg.model), adapter, cfg.serve, cfg.model.dtype))
    front = work / "avatar.yaml"
    window = {"context_window": 1}  # the native side's prompt: the newest message only, as direct's
    cfg.dataset = cfg.dataset.model_copy(update=window)
    front.write_text(yaml.safe_dump({**yaml.safe_load(a.config.read_text()), "serve": serve, "dataset": window},
                                    allow_unicode=True))  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    print(f"vLLM: {' '.join(command)}")
    with started([str(a.vllm_python), *command[1:]], f"{vllm}/health", work / "vllm.log", env):
        ours_args = [sys.executable, "-m", "wechat_avatar", "serve", "-w", str(ws.root), "-c", str(front),
                     "--port", ours.rsplit(":", 1)[1]]  # fmt: skip
        with started(ours_args, f"{ours}/healthz", work / "serve.log") as front_pid:
            engine = VLLMEngine.open(ws, cfg, adapter)
            how = {"temperature": a.temperature, "top_p": 1.0, "seed": 0}  # as the direct side's
            persona, sampling = Persona.of(ws, cfg), Sampling(a.tokens, a.temperature, 1.0, 0)
            friends = [f"{FRIEND}{i}" for i in range(max(a.clients))]  # not contacts: named as sent

            def body(friend: str, text: str) -> dict[str, Any]:
                return engine.request(persona.prompt([persona.line(False, friend, text)]), sampling, stream=False)

            long = [post(vllm, "/v1/completions", body(friends[0], t))["usage"]["completion_tokens"] for t in TEXTS]
            pick = next((i for i, n in enumerate(long) if n >= a.tokens), long.index(max(long)))
            text = TEXTS[pick]
            direct = [body(f, text) for f in friends]
            engine.close()
            chats = [{"messages": [{"role": "user", "content": text}], "user": f, "max_tokens": a.tokens, **how}
                     for f in friends]  # fmt: skip
            natives = [{"friend": f, "message": text, "max_tokens": a.tokens, **how} for f in friends]
            # client i speaks as friend i on every side (our API runs one friend's turns one at a time)
            sides: dict[str, Callable[[int], int]] = {
                "direct": lambda i: post(vllm, "/v1/completions", direct[i])["usage"]["completion_tokens"],
                "openai": lambda i: post(ours, "/v1/chat/completions", chats[i])["usage"]["completion_tokens"],
                "native": lambda i: post(ours, "/v1/avatar/reply", natives[i])["usage"]["completion_tokens"],
            }  # fmt: skip
            for ask in sides.values():  # warm-up: first requests compile and allocate
                measure(2, 2, ask)
            figures, cpu = {}, {}
            for n in a.clients:
                for side, ask in sides.items():
                    before = sum(psutil.Process(front_pid).cpu_times()[:2])
                    figures[side, n] = measure(n, a.replies, ask)
                    cpu[side, n] = (sum(psutil.Process(front_pid).cpu_times()[:2]) - before) / (n * a.replies) * 1000
    kind = "greedy" if a.temperature == 0 else f"temperature {a.temperature}, seed 0"
    print(f"{kind}, {a.tokens} tokens a reply at most ({text!r}: {long[pick]}), {a.replies} replies per client, "
          f"base {cfg.model.base}")  # fmt: skip
    print(f"{'clients':>7} {'side':<7} {'replies/s':>10} {'tokens/s':>10} {'vs direct':>10} {'our CPU/reply':>14}")
    for (side, n), (rps, tps) in figures.items():
        print(f"{n:>7} {side:<7} {rps:>10.2f} {tps:>10.1f} {tps / figures['direct', n][1]:>9.2f}x "
              f"{cpu[side, n]:>11.1f} ms")  # fmt: skip
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if len(a.clients) > 1:
        low, high = min(a.clients), max(a.clients)
        for side in sides:
            print(f"{side}: {high} clients / {low}: {figures[side, high][1] / figures[side, low][1]:.2f}x tokens/s")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
