"""The vLLM backend's cost: vLLM asked directly against `serve --backend vllm` in front of it, in one run.

    python benchmarks/vllm_backend.py --vllm-python .venv-vllm/bin/python \\
        [--workspace demo/workspace] [--config configs/demo.yaml] [--clients 1 8] [--replies 16] [--tokens 32]

One vLLM (started with the command `serve --backend vllm` prints: the workspace's base + its SFT
adapter as LoRA module `sft`, float32) and one `wechat-avatar serve --backend vllm` in front of it
(no rate limit). Each client sends --replies requests one after another, greedy, --tokens tokens:
  direct:  POST vLLM /v1/completions with the body our backend would send (the same prompt ids,
           stops and sampling: VLLMEngine.request), so only our server is missing;
  openai:  POST our /v1/chat/completions (no history kept);
  native:  POST our /v1/avatar/reply as 胡三行: the history is read and written every time, but the
           front runs with dataset.context_window 1, so the prompt stays the one message.
The same conversation on every side (the first of TEXTS whose greedy reply runs the full --tokens),
so greedy replies are the same tokens. Prints replies/s and generated tokens/s (vLLM's usage) for
1 and 8 concurrent clients, ours/direct (our overhead) and
8 clients/1 (what vLLM's batching gives). The workspace must hold a trained adapter on a base whose
attention head size vLLM's CPU kernels take (32, 64, …: the tiny-cpu preset's is 64); `make demo`
makes one.
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

import yaml

from wechat_avatar.config import load_config
from wechat_avatar.models.load import resolve
from wechat_avatar.serve.engine import Persona, Sampling
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.vllm import VLLMEngine, start_command
from wechat_avatar.workspace import Workspace

FRIEND = "胡三行"
# the benchmark's message: the first of these whose greedy reply runs the full --tokens (a reply that stops
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
def started(args: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
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
        yield
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
    serve = {"vllm_url": vllm, "backend": "vllm", "requests_per_minute": 0, "max_concurrent": 64, "temperature": 0.0}
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
        with started(ours_args, f"{ours}/healthz", work / "serve.log"):
            engine = VLLMEngine.open(ws, cfg, adapter)
            persona, name = Persona.of(ws, cfg), Friends.of(ws).resolve(FRIEND)[1]  # as our API names them
            bodies = [engine.request(persona.prompt([persona.line(False, name, text)]),
                                     Sampling(a.tokens, 0.0, 1.0, 0), stream=False) for text in TEXTS]  # fmt: skip
            engine.close()
            long = [post(vllm, "/v1/completions", body)["usage"]["completion_tokens"] for body in bodies]
            pick = next((i for i, n in enumerate(long) if n >= a.tokens), long.index(max(long)))
            direct_body, text = bodies[pick], TEXTS[pick]
            chat = {"messages": [{"role": "user", "content": text}], "user": FRIEND, "max_tokens": a.tokens,
                    "temperature": 0.0, "seed": 0}  # fmt: skip
            native = {"friend": FRIEND, "message": text, "max_tokens": a.tokens, "temperature": 0.0, "seed": 0}
            sides: dict[str, Callable[[int], int]] = {
                "direct": lambda i: post(vllm, "/v1/completions", direct_body)["usage"]["completion_tokens"],
                "openai": lambda i: post(ours, "/v1/chat/completions", chat)["usage"]["completion_tokens"],
                "native": lambda i: post(ours, "/v1/avatar/reply", native)["usage"]["completion_tokens"],
            }  # fmt: skip
            for ask in sides.values():  # warm-up: first requests compile and allocate
                measure(2, 2, ask)
            figures = {(side, n): measure(n, a.replies, ask) for n in a.clients for side, ask in sides.items()}
    print(f"greedy, {a.tokens} tokens a reply at most ({text!r}: {long[pick]}), {a.replies} replies per client, "
          f"base {cfg.model.base}")  # fmt: skip
    print(f"{'clients':>7} {'side':<7} {'replies/s':>10} {'tokens/s':>10} {'vs direct':>10}")
    for (side, n), (rps, tps) in figures.items():
        print(f"{n:>7} {side:<7} {rps:>10.2f} {tps:>10.1f} {tps / figures['direct', n][1]:>9.2f}x")
    if len(a.clients) > 1:
        low, high = min(a.clients), max(a.clients)
        for side in sides:
            print(f"{side}: {high} clients / {low}: {figures[side, high][1] / figures[side, low][1]:.2f}x tokens/s")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
