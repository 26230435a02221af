"""Recipe: the reward model -> WORKSPACE/adapters/reward/ (LoRA adapter + score head).

    wechat-avatar train reward [--max-steps N]

Every ordered pair of differently scored candidates in WORKSPACE/rlhf/ranked.jsonl (rlhf/ranked.py: `pairs`)
is one Bradley-Terry example: the reward of the higher-scored reply should be higher
(train/scoring.py: `bradley_terry`, with the sign the seed got wrong, tested). Whole contexts are
held out (never half of a context's pairs), and held-out pair accuracy — the share of held-out
pairs the model orders like the labels — is in run.json before and after training.

A pair too long for `max_length` loses the start of its context, never the pair: TRL's
RewardTrainer drops such pairs silently, and needs a sequence-classification copy of the base,
while PPO shares one causal-LM base among all its roles; so this loop is written out here (it is
short: score chosen and rejected in one forward, the loss, a step).
Outputs: adapter_config.json, adapter_model.safetensors, score.safetensors, run.json, loss.svg.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from peft import LoraConfig, get_peft_model

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import dataset_hash, self_name
from wechat_avatar.models.load import RUN_FILE, fingerprint, load_base, resolve
from wechat_avatar.rlhf.ranked import Ranked, conversation
from wechat_avatar.train.pairs import Pair, all_pairs, read_pairs
from wechat_avatar.train.scoring import ScoreHead, bradley_terry, encode_reply, score_rows
from wechat_avatar.train.sft import plot_losses
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Encoded(NamedTuple):
    """One pair as token ids, ready to score."""

    chosen: list[int]
    rejected: list[int]


def split_contexts(records: list[Ranked], ratio: float, seed: int) -> tuple[list[Ranked], list[Ranked]]:
    """(train, held out) by context: a context's pairs all land on one side. At least one context is
    held out when ratio > 0 and there are two or more."""
    sources = sorted({r.source for r in records})
    random.Random(seed).shuffle(sources)
    n = min(len(sources) - 1, max(1, round(ratio * len(sources)))) if ratio > 0 and len(sources) > 1 else 0
    held = set(sources[:n])
    return [r for r in records if r.source not in held], [r for r in records if r.source in held]


class RewardRecipe:
    """setup() reads pairs and loads the base, train() runs the loop, save() writes the adapter."""

    def __init__(self, workspace: Workspace, cfg: AvatarConfig, *, progress: Progress | None = None,
                 log: Callable[[str], None] = print, loss: Loss = bradley_terry) -> None:  # fmt: skip
        self.workspace, self.cfg, self.progress, self.log, self.loss = workspace, cfg, progress, log, loss
        self.out = workspace.adapter("reward")

    def setup(self) -> None:
        r = self.cfg.rlhf.reward
        records, self.skipped = read_pairs(self.workspace)
        train, held = split_contexts(records, r.heldout_ratio, r.seed)
        self.source = resolve(self.workspace, self.cfg.model)
        model, self.tokenizer = load_base(self.source, self.cfg.model)
        name = self_name(self.workspace)
        self.system = self.cfg.dataset.system_prompt.format(name=name)
        self.cut = {"pairs_truncated": 0, "tokens_cut": 0}
        self.train_pairs = [self._encode(p, name) for p in all_pairs(train)]
        self.held_pairs = [self._encode(p, name) for p in all_pairs(held)]
        self.contexts = {"train": len({x.source for x in train}), "heldout": len({x.source for x in held})}
        torch.manual_seed(r.seed)  # the adapter's and the head's initialisation
        lora = LoraConfig(r=r.lora_r, lora_alpha=r.lora_alpha, lora_dropout=0.0, target_modules=r.lora_targets,
                          task_type="CAUSAL_LM")  # fmt: skip
        self.model = get_peft_model(model, lora)
        self.head = ScoreHead(model.config.hidden_size).to(model.device)

    def _encode(self, pair: Pair, name: str) -> Encoded:
        messages = conversation(pair.source, name, self.system, self.cfg.dataset.context_window)
        max_length = self.cfg.rlhf.reward.max_length
        (chosen, cut_c), (rejected, cut_r) = (encode_reply(self.tokenizer, messages, reply, max_length)
                                              for reply in (pair.chosen, pair.rejected))  # fmt: skip
        if cut_c or cut_r:  # counted, reported: the pair itself is kept
            self.cut["pairs_truncated"] += 1
            self.cut["tokens_cut"] += cut_c + cut_r
        return Encoded(chosen, rejected)

    def _scores(self, batch: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        scores = score_rows(self.model, self.head, [p.chosen for p in batch] + [p.rejected for p in batch],
                            self.tokenizer.pad_token_id)  # fmt: skip
        return scores[: len(batch)], scores[len(batch) :]

    @torch.no_grad()
    def accuracy(self, pairs: list[Encoded]) -> float | None:
        """Share of pairs whose chosen reply gets the higher reward (None without pairs)."""
        if not pairs:
            return None
        self.model.eval()
        size = self.cfg.rlhf.reward.batch_size
        right = 0
        for start in range(0, len(pairs), size):
            chosen, rejected = self._scores(pairs[start : start + size])
            right += int((chosen > rejected).sum())
        return round(right / len(pairs), 4)

    def train(self) -> dict[str, Any]:
        r = self.cfg.rlhf.reward
        per_epoch = -(-len(self.train_pairs) // r.batch_size)
        steps = r.max_steps or max(1, round(r.epochs * per_epoch))
        before = {"train": self.accuracy(self.train_pairs), "heldout": self.accuracy(self.held_pairs)}
        params = [p for p in self.model.parameters() if p.requires_grad] + list(self.head.parameters())
        optimizer = torch.optim.AdamW(params, lr=r.learning_rate)
        order = random.Random(r.seed)
        advance = self.progress("reward", steps) if self.progress else None
        log: list[dict[str, Any]] = []
        queue: list[Encoded] = []
        started = time.perf_counter()
        self.model.train()
        for step in range(1, steps + 1):
            # the next batch of pairs, reshuffled each epoch
            while len(queue) < r.batch_size:
                queue += order.sample(self.train_pairs, len(self.train_pairs))
            batch, queue = queue[: r.batch_size], queue[r.batch_size :]
            # score chosen and rejected in one forward; Bradley-Terry on their difference
            chosen, rejected = self._scores(batch)
            loss = self.loss(chosen, rejected)
            # step
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            row = {"step": step, "loss": round(loss.item(), 4),
                   "accuracy": round(float((chosen > rejected).float().mean()), 4)}  # fmt: skip
            log.append(row)
            if advance:
                advance(1, description=f"reward  loss {row['loss']:.4f}")
            self.log(f"step {step}/{steps}  loss {row['loss']:.4f}  batch accuracy {row['accuracy']:.2f}")
        after = {"train": self.accuracy(self.train_pairs), "heldout": self.accuracy(self.held_pairs)}
        return {
            "steps": steps, "seconds": round(time.perf_counter() - started, 1),
            "pairs": {"train": len(self.train_pairs), "heldout": len(self.held_pairs)}, "contexts": self.contexts,
            "skipped_records": self.skipped, **self.cut,
            "accuracy_before": before, "accuracy_after": after, "log": log,
        }  # fmt: skip

    def save(self, summary: dict[str, Any]) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(self.out))
        self.head.save(self.out)
        record = {
            "stage": "reward", "base": self.cfg.model.base, "base_source": self.source,
            "base_fingerprint": fingerprint(self.source), "preset": self.cfg.preset,
            "dataset": dataset_hash(self.workspace), "ranked": str(self.workspace.ranked),
            "config": {"model": self.cfg.model.model_dump(), "reward": self.cfg.rlhf.reward.model_dump()},
            **summary,
        }  # fmt: skip
        (self.out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        plot_losses(summary["log"], self.out / "loss.svg")
        return self.out


def run_reward(workspace: Workspace, cfg: AvatarConfig, *, progress: Progress | None = None,
               log: Callable[[str], None] = print, loss: Loss = bradley_terry,
               ) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    recipe = RewardRecipe(workspace, cfg, progress=progress, log=log, loss=loss)
    recipe.setup()
    summary = recipe.train()
    return recipe.save(summary), summary
