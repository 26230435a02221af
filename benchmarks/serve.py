"""Serving throughput: our server on both reply engines, and `transformers serve --continuous-batching`.

    PYTHONPATH=. python benchmarks/serve.py [--model tiny|smollm2] [--quick] [--clients 1,2,4,8,16]
        [--prompts 4] [--max-tokens 32 | --mixed] [--max-batch 16] [--threads 1] [--servers LIST] [--keep DIR]

One model, three servers, the same clients, one after another on the same machine:
  continuous  our real app (`serve.app.build_app`, uvicorn) on `serve.continuous.ContinuousEngine`,
              serving the base + a LoRA adapter as `serve` loads it (serve.merge_adapter: folded into
              the base's weights at load time)
  micro       the same app on `serve.engine.Engine` (micro-batching over `generate`)
  ENGINE@lora    either engine with the adapter kept apart (serve.merge_adapter: false): what an
              unmerged LoRA's extra matmuls in every layer cost
  ENGINE@merged  either engine on the merged folder `export` writes (the peer's very weights)
  peer        `transformers serve --continuous-batching` (the same transformers) on the merged folder:
              it loads no adapter. Its KV cache gets our engine's size (it would take 60 % of free RAM).
Models: `tiny` is the tiny-cpu preset's shape (Qwen2, hidden 256, 4 layers, Qwen's vocabulary trimmed
to the prompts), random-init: it never says a stop token, so every reply is --max-tokens long;
`smollm2` is SmolLM2-135M-Instruct (builtin:smollm2-135m). The adapter is LoRA r=16 on q/k/v/o as
`train sft` makes it, freshly initialised (B = 0: replies equal the base's, the compute is the same).

Each server runs in its own process; the clients are asyncio tasks here. For N clients (each of
--clients), every client sends the same --prompts prompts one after another, streamed, greedy,
max_tokens fixed; our server gets the friend's message and builds the persona prompt itself, the
peer gets that very prompt as messages, so both decode the same tokens. Counted: generated tokens
from each reply's usage (no `ignore_eos` in either API: a reply that stops early counts what it
said). With --mixed the prompts ask for 8, 64, 16 and 32 tokens in turn, as real clients do:
micro-batching shares a batch only among requests of one max_tokens. Printed per server and N:
replies/s, generated tokens/s, p50/p95 latency and time to first token, the speed-up against
1 client, and ours against the peer at the same N. The load average before each server is
printed: the machine may be shared, so ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["在吗", "今晚吃什么？火锅还是烧烤", "明天几点出发，我去接你", "哈哈哈哈你看到群里那个视频没",
           "周末有空吗，一起去爬山", "我妈让你下周来家里吃饭", "刚下班，累死了", "那个文件你发我一下"]  # fmt: skip
FRIEND = "胡三行"
MIXED = [8, 64, 16, 32]  # --mixed: the prompts' max_tokens, in turn (what micro-batching cannot share)


# --- the model, its adapter and the merged folder -----------------------------------------------------------------


def build(model: str, root: Path) -> tuple[Path, Path, Path]:
    """(base folder, adapter folder, merged folder) for `model`."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from wechat_avatar.config import TinyModelConfig
    from wechat_avatar.models import qwen_tokenizer
    from wechat_avatar.models.smollm2 import ensure_smollm2
    from wechat_avatar.models.tiny import random_model

    base, adapter, merged = root / "base", root / "adapter", root / "merged"
    if model == "tiny":
        tokenizer = qwen_tokenizer.trimmed(PROMPTS * 4 + [FRIEND])
        random_model(TinyModelConfig(), tokenizer).save_pretrained(base)
        tokenizer.save_pretrained(base)
    else:
        base = ensure_smollm2()
    torch.manual_seed(0)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(adapter)
    # the merge `wechat-avatar export` does; export itself wants a workspace and a trained run, this adapter has neither
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)).merge_and_unload()
    plain.save_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = qwen_tokenizer.CHATML
    tokenizer.save_pretrained(merged)
    return base, adapter, merged


def persona() -> Any:
    from wechat_avatar.config import AvatarConfig
    from wechat_avatar.serve.engine import Persona

    cfg = AvatarConfig()
    return Persona("乌冬面", cfg.dataset.system_prompt.format(name="乌冬面"), cfg.dataset.context_window,
                   int(cfg.dataset.session_gap_hours * 3_600_000))  # fmt: skip


def serve_ours(engine_kind: str, base: Path, adapter: Path | None, port: int, max_batch: int, state: Path,
               apart: bool) -> None:  # fmt: skip
    """The child process: our app on one engine, until killed; the adapter folded in as `serve` does
    unless `apart`."""
    import uvicorn
    from peft import PeftModel

    from wechat_avatar.config import ModelConfig, ServeConfig
    from wechat_avatar.models.load import Loaded, load_base, merged
    from wechat_avatar.serve.app import Settings, build_app
    from wechat_avatar.serve.continuous import ContinuousEngine
    from wechat_avatar.serve.engine import Engine
    from wechat_avatar.serve.friends import Friends

    model, tokenizer = load_base(str(base), ModelConfig(dtype="float32"))
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    loaded = Loaded(model.eval(), tokenizer, str(base), adapter)
    loaded = loaded if apart else merged(loaded)
    cfg = ServeConfig(requests_per_minute=0, max_concurrent=256, max_batch=max_batch, max_tokens_limit=64,
                      max_prompt_tokens=512, batching=engine_kind)  # fmt: skip
    if engine_kind == "continuous":
        engine: Any = ContinuousEngine.open(loaded, persona(), cfg)
    else:
        engine = Engine(loaded, persona(), max_batch=cfg.max_batch, batch_wait_ms=cfg.batch_wait_ms,
                        max_prompt_tokens=cfg.max_prompt_tokens, seed=cfg.seed)  # fmt: skip
    try:
        app = build_app(Settings(cfg, state, Friends({})), engine)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        engine.close()


def start(kind: str, paths: tuple[Path, Path, Path], port: int, max_batch: int, threads: int,
          work: Path) -> subprocess.Popen[str]:  # fmt: skip
    base, adapter, merged = paths
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
    }  # torch's intra-op threads, for every server alike
    if kind == "peer":
        from wechat_avatar.serve.continuous import PAGE

        blocks = -(-(512 + 64) // PAGE) * max_batch + 1  # what our engine allocates for the same limits
        args = [str(Path(sys.executable).with_name("transformers")), "serve", str(merged), "--continuous-batching",
                "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
                "--cb-block-size", str(PAGE), "--cb-num-blocks", str(blocks), "--cb-max-batch-tokens", "512",
                "--log-level", "error", "--format", "quiet"]  # fmt: skip
    else:  # ENGINE, ENGINE@lora (the adapter kept apart), or ENGINE@merged: the peer's very weights
        engine, _, on = kind.partition("@")
        model = ["--base", str(merged)] if on == "merged" else ["--base", str(base), "--adapter", str(adapter)]
        model += ["--apart"] if on == "lora" else []
        args = [sys.executable, __file__, "--child", engine, *model, "--port", str(port), "--max-batch",
                str(max_batch), "--state", str(work / f"{kind}.db")]  # fmt: skip
    log = (work / f"{kind}.log").open("w")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


# --- the clients --------------------------------------------------------------------------------------------------


class Done(NamedTuple):
    latency: float
    first: float  # time to the first content chunk
    tokens: int


def body(kind: str, text: str, max_tokens: int, conversation: list[dict[str, str]], merged: Path) -> dict[str, Any]:
    """Ours gets the friend's message (it builds the persona prompt); the peer gets that prompt, and the
    model name it is pinned to."""
    messages = conversation if kind == "peer" else [{"role": "user", "content": text}]
    return {"model": str(merged) if kind == "peer" else "avatar", "messages": messages, "max_tokens": max_tokens,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}, "user": FRIEND}  # fmt: skip


async def ask(client: Any, url: str, request: dict[str, Any]) -> Done:
    started, first, tokens = time.perf_counter(), None, 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=request) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {url}: {(await response.aread()).decode()[:500]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the server failed a reply: {chunk['error']}")
            if first is None and any(c.get("delta", {}).get("content") for c in chunk.get("choices") or []):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return Done(end - started, (first or end) - started, tokens)


async def round_(url: str, requests: list[dict[str, Any]], clients: int) -> tuple[float, list[Done]]:
    import httpx2 as httpx  # what the pinned openai client itself uses

    async def client_(http: Any) -> list[Done]:
        return [await ask(http, url, r) for r in requests]

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        started = time.perf_counter()
        done = await asyncio.gather(*(client_(http) for _ in range(clients)))
        return time.perf_counter() - started, [d for per in done for d in per]


def wait_ready(url: str, server: subprocess.Popen[str], log: Path, timeout: float = 600) -> None:
    import httpx2 as httpx  # what the pinned openai client itself uses

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited ({server.returncode}); its log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"the server at {url} did not start in {timeout:.0f} s")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(kind: str, paths: tuple[Path, Path, Path], args: argparse.Namespace, work: Path) -> dict[int, dict]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url, who = f"http://127.0.0.1:{port}", persona()
    texts = (PROMPTS * 4)[: args.prompts]
    lengths = MIXED if args.mixed else [args.max_tokens]
    requests = [body(kind, t, lengths[i % len(lengths)], who.prompt([who.line(False, FRIEND, t)]), paths[2])
                for i, t in enumerate(texts)]  # fmt: skip
    load = os.getloadavg()[0]
    server = start(kind, paths, port, args.max_batch, args.threads, work)
    results: dict[int, dict] = {}
    try:
        wait_ready(url, server, work / f"{kind}.log")
        asyncio.run(round_(url, requests[:1], 1))  # warm-up, not counted
        for n in args.clients:
            wall, done = asyncio.run(round_(url, requests, n))
            tokens = sum(d.tokens for d in done)
            results[n] = {"replies/s": len(done) / wall, "tokens/s": tokens / wall, "tokens": tokens,
                          "p50": pct([d.latency for d in done], 50), "p95": pct([d.latency for d in done], 95),
                          "ttft50": pct([d.first for d in done], 50), "ttft95": pct([d.first for d in done], 95),
                          "load": load}  # fmt: skip
            print(f"  {kind:17} {n:3} clients: {results[n]['tokens/s']:8.1f} tokens/s", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    return results


def report(all_results: dict[str, dict[int, dict]], clients: list[int]) -> None:
    head = (f"{'server':17} {'clients':>7} {'replies/s':>10} {'tokens/s':>9} {'vs 1':>6} {'p50 s':>7} {'p95 s':>7} "
            f"{'ttft p50':>9} {'ttft p95':>9} {'vs peer':>8}")  # fmt: skip
    print("\n" + head + "\n" + "-" * len(head))
    peer = all_results.get("peer", {})
    for kind, results in all_results.items():
        one = results[clients[0]]["tokens/s"]
        for n in clients:
            r = results[n]
            against = f"{r['tokens/s'] / peer[n]['tokens/s']:.2f}x" if kind != "peer" and n in peer else ""
            print(f"{kind:17} {n:7} {r['replies/s']:10.2f} {r['tokens/s']:9.1f} {r['tokens/s'] / one:5.2f}x "
                  f"{r['p50']:7.2f} {r['p95']:7.2f} {r['ttft50']:9.2f} {r['ttft95']:9.2f} {against:>8}")  # fmt: skip
    loads = ", ".join(f"{k} {next(iter(v.values()))['load']:.2f}" for k, v in all_results.items())
    print(f"\nload average (1 min) before each server: {loads} on {os.cpu_count()} CPUs")
    for a, b in (("continuous", "micro"), ("continuous", "continuous@lora"), ("micro", "micro@lora")):
        if a in all_results and b in all_results:
            ratios = [all_results[a][n]["tokens/s"] / all_results[b][n]["tokens/s"] for n in clients]
            print(f"{a} / {b} tokens/s: " + ", ".join(f"{n}: {r:.2f}x" for n, r in zip(clients, ratios, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--quick", action="store_true", help="1, 4 and 8 clients, 2 prompts each")
    parser.add_argument("--clients", default="1,2,4,8,16", help="comma-separated client counts")
    parser.add_argument("--prompts", type=int, default=4, help="prompts each client sends, one after another")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request (at most 64)")
    parser.add_argument("--mixed", action="store_true", help=f"max_tokens {MIXED} in turn instead of --max-tokens")
    parser.add_argument("--max-batch", type=int, default=16, help="serve.max_batch of our engines")
    parser.add_argument(
        "--servers",
        default="continuous,micro,continuous@lora,peer",
        help="continuous / micro: our app on that engine with base + adapter folded in (what `serve` runs); "
        "ENGINE@lora: the adapter kept apart; ENGINE@merged: on the export folder; "
        "peer: transformers serve --continuous-batching",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per server (on a shared machine more "
        "threads than free cores slow every server down many times over)",
    )
    parser.add_argument("--keep", type=Path, help="build the models here and keep them (default: a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--adapter", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--apart", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_ours(args.child, args.base, args.adapter, args.port, args.max_batch, args.state, args.apart)
        return
    args.clients = [1, 4, 8] if args.quick else [int(n) for n in args.clients.split(",")]
    args.prompts = 2 if args.quick else args.prompts
    work = args.keep or Path(tempfile.mkdtemp(prefix="serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"building {args.model} (base, LoRA adapter, merged folder) in {work}", flush=True)
        paths = build(args.model, work)
        tokens = MIXED if args.mixed else args.max_tokens
        print(f"{args.prompts} prompts per client, max_tokens {tokens}, greedy, streamed; "
              f"our max_batch {args.max_batch}; {args.threads} torch threads per server", flush=True)  # fmt: skip
        results = {kind: measure(kind, paths, args, work) for kind in args.servers.split(",")}
        report(results, args.clients)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
