"""SFT fidelity: does the tiny-cpu SFT beat its base, and which recipe change made it? One command.

    python benchmarks/sft_fidelity.py [--messages 10000] [--seed 7] [--keep DIR] [--only NAME ...]
        [--samples 100] [--list]

`make demo`'s history (synth --messages 10000 --seed 7 -> ingest -> dataset, through the real CLI),
then one variant after another: each pre-trains its tiny base (shared between variants with the
same `model.tiny` settings), trains the SFT adapter and runs the real eval (SFT and its base on the
same held-out subset, same sampling). Variants are config overrides on top of configs/demo.yaml:
`before` is the recipe as it was (issue 13's measurement), `after` the preset as shipped now, the
rest the single-knob experiments of notes/README-sft.md. Prints one markdown table: perplexity,
BLEU-4, ROUGE-L, distinct-1 (and the person's), style gap, the most over-produced reply and its
ratio to the person's own frequency, and the rude share under provocation (and the person's).

Not timed; takes minutes per variant on 2 cores (--only picks some, --list names them).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wechat_avatar.config import AvatarConfig, load_config  # noqa: E402
from wechat_avatar.workspace import Workspace  # noqa: E402

CLI = [sys.executable, "-m", "wechat_avatar"]
# the recipe before issue 13's fix, spelled out, so `before` stays reproducible after the presets change
BEFORE: dict[str, Any] = {
    "model": {"tiny": {"pretrain_steps": 150}},
    "sft": {"lora_r": 16, "lora_alpha": 32, "epochs": 2, "learning_rate": 1.0e-3, "loss_on": "all"},
    "eval": {"temperature": 0.7, "top_p": 0.9},
}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": BEFORE,
    "before, lr 2e-4": {**BEFORE, "sft": {**BEFORE["sft"], "learning_rate": 2.0e-4}},
    "before, 1 epoch": {**BEFORE, "sft": {**BEFORE["sft"], "epochs": 1}},
    "before, loss on last reply": {**BEFORE, "sft": {**BEFORE["sft"], "loss_on": "last"}},
    "before, LoRA all-linear r 64": {**BEFORE, "sft": {**BEFORE["sft"], "lora_targets": ["all-linear"],
                                                       "lora_r": 64, "lora_alpha": 128}},
    "before, pretrain 600 steps": {**BEFORE, "model": {"tiny": {"pretrain_steps": 600}}},
    "after": {},  # the tiny-cpu preset as shipped: the same training, sampled at T 1.0 / top_p 1.0
    # is the base under-trained? the same SFT and sampling as `after`, on a base pre-trained 4x longer
    "after, pretrain 600 steps": {"model": {"tiny": {"pretrain_steps": 600}}},
}  # fmt: skip


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_for(overrides: dict[str, Any], samples: int) -> AvatarConfig:
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    data = merge(cfg.model_dump(), overrides)
    data["eval"]["samples"] = samples
    return AvatarConfig.model_validate(data)


def prepare(root: Path, messages: int, seed: int) -> Workspace:
    """synth -> ingest -> dataset through the real CLI: the data every variant shares."""
    data = Workspace(root / "data")
    if data.manifest.is_file():
        return data
    export = root / "export"
    shutil.rmtree(export, ignore_errors=True)
    subprocess.run([*CLI, "synth", str(export), "--messages", str(messages), "--seed", str(seed)], check=True)
    subprocess.run([*CLI, "ingest", str(export), "--workspace", str(data.root)], check=True)
    subprocess.run([*CLI, "dataset", "--workspace", str(data.root)], check=True)
    return data


def workspace_for(root: Path, data: Workspace, name: str) -> Workspace:
    """A variant's own workspace: the shared dataset (and PII map) copied in, nothing trained yet."""
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    ws = Workspace(root / "runs" / slug)
    if not ws.dataset.is_dir():
        shutil.copytree(data.dataset, ws.dataset)
        if data.private.is_dir():
            shutil.copytree(data.private, ws.private)
    return ws


def run_variant(root: Path, data: Workspace, name: str, cfg: AvatarConfig) -> dict[str, Any]:
    from wechat_avatar.eval.run import evaluate
    from wechat_avatar.train.pretrain import build_tiny, is_fresh
    from wechat_avatar.train.sft import run_sft

    ws = workspace_for(root, data, name)
    # one pre-trained base per model.tiny setting: variants that only change SFT or eval share it
    key = json.dumps(cfg.model.tiny.model_dump(), sort_keys=True)
    cache = root / "bases" / _digest(key)
    if not is_fresh(ws, cfg.model.tiny):
        if (cache / "build.json").is_file():
            shutil.rmtree(ws.tiny_model, ignore_errors=True)
            shutil.copytree(cache, ws.tiny_model)
        if not is_fresh(ws, cfg.model.tiny):
            print(f"[{name}] pre-training the tiny base", flush=True)
            build_tiny(ws, cfg.model.tiny)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(ws.tiny_model, cache)
    # one adapter per (base, sft) setting: variants that only change eval share it
    trained = root / "adapters" / _digest([key, cfg.sft.model_dump()])
    if (trained / "run.json").is_file():
        shutil.rmtree(ws.adapter(), ignore_errors=True)
        shutil.copytree(trained, ws.adapter())
        summary = json.loads((trained / "run.json").read_text(encoding="utf-8"))
    else:
        print(f"[{name}] sft", flush=True)
        _, summary = run_sft(ws, cfg, log=lambda line: None)
        shutil.rmtree(trained, ignore_errors=True)
        shutil.copytree(ws.adapter(), trained, ignore=shutil.ignore_patterns("checkpoints"))
    print(f"[{name}] eval", flush=True)
    result = evaluate(ws, cfg, None, ["base"], name="fidelity").metrics
    use = {label: context_use(ws, cfg, path) for label, path in (("sft", ws.adapter()), ("base", None))}
    steps = {k: summary[k] for k in ("steps", "eval_loss_before", "eval_loss_after")}
    return {"result": result, "sft": steps, "context_use": use}


def context_use(ws: Workspace, cfg: AvatarConfig, adapter: Path | None, n: int = 60) -> float:
    """How much the model reads the context: the mean of log p(real reply | its own context) minus
    log p(the same reply | another held-out sample's context), in nats per reply (0: context ignored)."""
    import random

    import torch

    from wechat_avatar.eval.run import load_test
    from wechat_avatar.generate import prompt_text
    from wechat_avatar.models.load import load_for_inference

    loaded = load_for_inference(ws, cfg, adapter)
    model, tok = loaded.model, loaded.tokenizer
    samples = load_test(ws)[:n]

    def logp(context: list[dict[str, str]], reply: str) -> float:
        prompt = tok(prompt_text(tok, context), add_special_tokens=False)["input_ids"][-(cfg.sft.max_length // 2) :]
        answer = tok(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + answer])).logits[0].log_softmax(-1)
        return sum(logits[len(prompt) + i - 1, t].item() for i, t in enumerate(answer))

    other = list(range(len(samples)))
    random.Random(0).shuffle(other)
    gaps = [logp(s.context, s.reply) - logp(samples[j].context, s.reply) for s, j in zip(samples, other, strict=True)]
    return sum(gaps) / len(gaps)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def row(name: str, result: dict[str, Any], use: dict[str, float]) -> list[str]:
    runs = {run["kind"]: run for run in result["runs"]}
    real = result["real"]
    sft, base = runs["adapter"], runs["base"]

    def pair(key: str, fmt: str = "{:.2f}") -> str:
        return f"{fmt.format(sft['metrics'][key])} / {fmt.format(base['metrics'][key])}"

    def share(civility: dict[str, Any]) -> str:
        return f"{100 * civility['rude_share']:.0f} %"

    def worst(run: dict[str, Any]) -> str:
        w = run["overproduction"]["worst"]
        return f"{w['ratio']:.1f}× {w['reply']}" if w else "–"

    return [
        name,
        pair("perplexity"),
        pair("bleu4"),
        pair("rougeL", "{:.1f}"),
        f"{sft['metrics']['distinct1']:.1f} / {base['metrics']['distinct1']:.1f}",
        f"{100 * sft['style_gap']['mean_abs']:.0f} % / {100 * base['style_gap']['mean_abs']:.0f} %",
        f"{worst(sft)} / {worst(base)}",
        f"{share(sft['provocation'])} / {share(base['provocation'])} (person {share(real['provocation'])}, "
        f"train {share(real['provocation']['train'])})",
        f"{100 * sft['civility']['rude_share']:.0f} %",
        f"{use['sft']:.2f} / {use['base']:.2f}",
    ]


HEADERS = ["variant", "perplexity SFT / base", "BLEU-4", "ROUGE-L", "distinct-1", "style gap",
           "most over-produced reply", "rude under provocation", "rude (general)",
           "context use (nats/reply)"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--samples", type=int, default=100, help="held-out samples scored (eval.samples)")
    parser.add_argument("--keep", type=Path, help="work here and keep it (reruns reuse the data and the bases)")
    parser.add_argument("--only", nargs="+", help="run only these variants")
    parser.add_argument("--list", action="store_true", help="name the variants and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join(f"{name}: {json.dumps(over, ensure_ascii=False)}" for name, over in VARIANTS.items()))
        return
    names = args.only or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; --list names them")
    root = args.keep or Path(tempfile.mkdtemp(prefix="sft-fidelity-"))
    root.mkdir(parents=True, exist_ok=True)
    data = prepare(root, args.messages, args.seed)
    rows = []
    for name in names:
        out = run_variant(root, data, name, config_for(VARIANTS[name], args.samples))
        rows.append(row(name, out["result"], out["context_use"]))
        (root / "results.jsonl").open("a", encoding="utf-8").write(
            json.dumps({"variant": name, **out}, ensure_ascii=False) + "\n")  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    from wechat_avatar.eval.metrics import distinct
    from wechat_avatar.eval.run import load_test, select

    person = [s.reply for s in select(load_test(data), args.samples)]
    print(f"\nperson's distinct-1 on the same held-out samples: {distinct(person, 1):.1f}\n")
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "---|" * len(HEADERS))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
