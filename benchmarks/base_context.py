"""Does the tiny base read the context? Context use and p(rude | provocation) against pre-training steps.

    python benchmarks/base_context.py [--steps 150,600,1200] [--keep DIR]

`make demo`'s history (synth --messages 10000 --seed 7 -> ingest -> dataset, as benchmarks/sft_fidelity.py
prepares it), then for each step count one tiny base pre-trained from scratch (no SFT), and printed per
base: pre-training seconds, mean train loss of the last 10 steps, context use (sft_fidelity.context_use:
log p(real reply | own context) - log p(same reply | another sample's context), nats, 0 = ignored), and
the probability mass of the persona's rude replies (synth's RUDE set, exact sequence probabilities)
after the held-out provocations against after 20 ordinary held-out contexts. Not timed; minutes per base.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import sft_fidelity as fidelity  # noqa: E402

from wechat_avatar.workspace import Workspace  # noqa: E402


def rude_mass(ws: Workspace, cfg: Any) -> dict[str, float]:
    """Mean p(any rude reply) after held-out provocations and after ordinary held-out contexts."""
    import torch

    from wechat_avatar.eval.run import load_test
    from wechat_avatar.generate import prompt_text
    from wechat_avatar.models.load import load_for_inference
    from wechat_avatar.synth import phrases as ph

    loaded = load_for_inference(ws, cfg, None)
    model, tok = loaded.model, loaded.tokenizer

    def logp(context: list[dict[str, str]], reply: str) -> float:
        prompt = tok(prompt_text(tok, context), add_special_tokens=False)["input_ids"][-128:]
        answer = tok(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + answer])).logits[0].log_softmax(-1)
        return sum(logits[len(prompt) + i - 1, t].item() for i, t in enumerate(answer))

    provocations = ph.PROVOCATIONS + ph.PARTNER_FIGHTS
    test = load_test(ws)
    provoked = [s for s in test if any(p in s.context[-1]["content"].split("\n")[-1] for p in provocations)]
    ordinary = [s for s in test if s not in provoked][:20]

    def mass(samples: list[Any]) -> float:
        return sum(sum(math.exp(logp(s.context, r)) for r in ph.RUDE) for s in samples) / max(1, len(samples))

    return {"provocations": len(provoked), "p_rude_provoked": mass(provoked), "p_rude_ordinary": mass(ordinary)}


def main() -> None:
    from wechat_avatar.train.pretrain import build_tiny

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="150,600,1200", help="comma-separated pre-training step counts")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="base-context-"))
    data = fidelity.prepare(root, 10000, 7)
    for steps in (int(s) for s in args.steps.split(",")):
        cfg = fidelity.config_for({"model": {"tiny": {"pretrain_steps": steps}}}, 100)
        ws = fidelity.workspace_for(root, data, f"base{steps}")
        started = time.perf_counter()
        if not (ws.tiny_model / "build.json").is_file():
            build_tiny(ws, cfg.model.tiny)
        seconds = time.perf_counter() - started
        loss = json.loads((ws.tiny_model / "build.json").read_text(encoding="utf-8"))["loss"]
        row = {"steps": steps, "seconds": round(seconds), "last_loss": round(sum(loss[-10:]) / 10, 3),
               "context_use": round(fidelity.context_use(ws, cfg, None), 3), **rude_mass(ws, cfg)}  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
