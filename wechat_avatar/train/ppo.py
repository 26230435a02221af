"""Recipe: PPO with four roles on ONE frozen base -> WORKSPACE/adapters/ppo/.

    wechat-avatar train ppo [--max-steps N] [--resume]

The roles are LoRA adapters on one base model in memory, switched with peft's set_adapter:

    policy      trained    starts as the SFT adapter (adapters/sft)
    reference   frozen     the SFT adapter again, without the PPO delta: the KL penalty's anchor
    reward      frozen     the reward adapter (adapters/reward) + its score head
    critic      trained    starts as the reward adapter, with a value head starting as the score head

so PPO holds one base, four small adapters and two heads where four separate models would hold
four bases (benchmarks/ppo_memory.py). TRL 1.12's PPOTrainer takes separate reward and value
models, so the loop is written out here, following TRL's PPO (per-token KL penalty to the
reference, the score at the reply's last token, GAE, clipped policy and value losses), plus an
optional SFT loss on the training split to keep the voice.

Prompts are the contexts of WORKSPACE/rlhf/ranked.jsonl, built by the project's prompt builder.
Each step: sample replies (policy), score them (reward), log-probs (reference) and values (critic)
without gradients; then num_ppo_epochs updates of policy and critic on that batch.
A checkpoint every `save_steps` (adapters, value head, optimizer, log; written whole, then
renamed) lets `--resume` after a kill continue to the state an uninterrupted run reaches: the
sampling seed and the prompts of a step depend only on (seed, step).
Outputs: the policy adapter (adapter_config.json, adapter_model.safetensors), critic/ with
score.safetensors (the value head), run.json (config and the per-step log), checkpoints/.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import dataset_hash, read_split, self_name
from wechat_avatar.errors import TrainingError
from wechat_avatar.models.load import RUN_FILE, check_adapter, fingerprint, load_base, resolve
from wechat_avatar.rlhf.ranked import conversation
from wechat_avatar.train.loss import reply_loss
from wechat_avatar.train.packing import PackedCollator
from wechat_avatar.train.pairs import read_pairs
from wechat_avatar.train.scoring import ScoreHead, decoder_hidden, encode_reply, score_rows
from wechat_avatar.train.sft import encode_split
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]
TRAINED, FROZEN = ("policy", "critic"), ("reference", "reward")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class Trajectory(NamedTuple):
    """One step's rollouts. B prompts, P = prompt width (left-padded), R = response width."""

    tokens: torch.Tensor  # [B, P + R] prompt and sampled reply ids
    attention: torch.Tensor  # [B, P + R] 1 on real tokens: the prompt, the reply up to and with its EOS
    positions: torch.Tensor  # [B, P + R] position ids that skip the left padding, as generate used
    mask: torch.Tensor  # [B, R] 1 on reply tokens that count
    logprobs: torch.Tensor  # [B, R] the policy's log-prob of each reply token when sampled
    ref_logprobs: torch.Tensor  # [B, R] the reference's
    values: torch.Tensor  # [B, R] the critic's value before each reply token
    scores: torch.Tensor  # [B] the reward model's score of each reply
    advantages: torch.Tensor  # [B, R] GAE, whitened
    returns: torch.Tensor  # [B, R] advantages (before whitening) + values: the value targets
    replies: list[str]  # the decoded replies, for logging


# --- the PPO arithmetic: pure functions, tested on hand-computed examples --------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                  kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Per-token rewards: -kl_coef x (log p - log p_ref) at every reply token, plus the reward model's
    score at the reply's last token. Also the per-token KL estimate (k1) itself."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long() - 1
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Generalised advantage estimation, backwards over each reply; the value after a reply's last
    token is 0 (the episode ends). Returns (advantages, returns = advantages + values)."""
    width = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(width)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * mask[:, t]
        # a masked (past-the-end) position passes nothing back to the one before it
        next_value = values[:, t] * mask[:, t]
        next_advantage = advantages[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(logprobs: torch.Tensor, old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """PPO's clipped surrogate (to minimise), and the share of tokens where the clip was active."""
    ratio = torch.exp(logprobs - old)
    unclipped, clipped = -advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)
    return masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(values: torch.Tensor, old: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float) -> torch.Tensor:  # fmt: skip
    """Clipped value loss: the prediction may not move more than `clip` from the rollout's value."""
    clipped = old + (values - old).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


# --- the recipe ------------------------------------------------------------------------------------------------------


class PPORecipe:
    """setup() loads one base with the four adapters, train() runs (or resumes) the loop, save() writes."""

    def __init__(self, workspace: Workspace, cfg: AvatarConfig, *, resume: bool = False,
                 progress: Progress | None = None, log: Callable[[str], None] = print,
                 rude: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.workspace, self.cfg, self.resume, self.progress, self.log = workspace, cfg, resume, progress, log
        self.rude = rude  # eval's rudeness check, for the log only: never part of the reward
        self.out = workspace.adapter("ppo")
        self.checkpoints = self.out / "checkpoints"
        self.sft, self.reward = workspace.trained_adapter("sft"), workspace.trained_adapter("reward")
        if self.sft is None:
            raise TrainingError(f"no SFT adapter in {workspace.adapter('sft')}: PPO's policy starts from it",
                                hint="run `wechat-avatar train sft` first")  # fmt: skip
        if self.reward is None:
            raise TrainingError(f"no reward model in {workspace.adapter('reward')}",
                                hint="run `wechat-avatar train reward` first")  # fmt: skip
        if resume and last_checkpoint(self.checkpoints) is None:
            raise TrainingError(f"nothing to resume: no complete checkpoint in {self.checkpoints}",
                                hint="run without --resume to start training")  # fmt: skip

    def setup(self) -> None:
        p = self.cfg.rlhf.ppo
        for adapter in (self.sft, self.reward):
            check_adapter(self.workspace, self.cfg, adapter)  # type: ignore[arg-type]
        records, _ = read_pairs(self.workspace)
        self.source = resolve(self.workspace, self.cfg.model)
        base, self.tokenizer = load_base(self.source, self.cfg.model)
        name = self_name(self.workspace)
        system = self.cfg.dataset.system_prompt.format(name=name)
        contexts = sorted({r.source for r in records})
        self.prompts = [conversation(s, name, system, self.cfg.dataset.context_window) for s in contexts]
        self.prompt_ids = [self._prompt_ids(m) for m in self.prompts]
        # one base, four adapters: only policy and critic will ever have requires_grad
        self.model = PeftModel.from_pretrained(base, str(self.sft), adapter_name="policy", is_trainable=True)
        self.model.load_adapter(str(self.sft), adapter_name="reference")
        self.model.load_adapter(str(self.reward), adapter_name="reward")
        self.model.load_adapter(str(self.reward), adapter_name="critic", is_trainable=True)
        self.model.eval()  # no dropout anywhere: the rollout's log-probs must be reproducible in the update
        self.reward_head = ScoreHead.load(self.reward).requires_grad_(False)
        self.value_head = ScoreHead.load(self.reward)  # the critic starts from the reward model
        self.sft_rows = []
        if p.sft_coef > 0:
            train = encode_split(self.tokenizer, read_split(self.workspace, "train"), self.cfg.sft.max_length, "all")
            self.sft_rows = [{"input_ids": i, "labels": lab} for i, lab in zip(*train.values(), strict=True)]

    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.cfg.rlhf.ppo.max_prompt_length :]  # the oldest turns go first

    def _use(self, role: str) -> None:
        """Switch the active adapter. peft's set_adapter marks the active adapter trainable, so the
        roles' trainability is set again: only policy and critic ever learn."""
        self.model.set_adapter(role)
        for name, param in self.model.named_parameters():
            if "lora_" in name:
                param.requires_grad = any(f".{role}." in name for role in TRAINED)

    def trainable(self) -> list[torch.nn.Parameter]:
        params = [p for n, p in sorted(self.model.named_parameters()) if any(f".{r}." in n for r in TRAINED)]
        return params + list(self.value_head.parameters())

    # -- the roles' forward passes ---------------------------------------------------------------------------------

    def _logprobs(self, traj_tokens: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor,
                  width: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Log-prob of each reply token under the active adapter (at the sampling temperature) and
        the entropy of each position's distribution. Shapes [B, R]."""
        hidden = decoder_hidden(self.model, traj_tokens, attention, positions)[:, -width - 1 : -1]
        logits = self.model.get_base_model().get_output_embeddings()(hidden).float()
        logp = F.log_softmax(logits / self.cfg.rlhf.ppo.temperature, dim=-1)
        chosen = logp.gather(-1, traj_tokens[:, -width:, None]).squeeze(-1)
        return chosen, -(logp.exp() * logp).sum(-1)

    def _values(self, tokens: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor,
                width: int) -> torch.Tensor:  # fmt: skip
        self._use("critic")
        return self.value_head(decoder_hidden(self.model, tokens, attention, positions)[:, -width - 1 : -1])

    @torch.no_grad()
    def _scores(self, batch: list[int], replies: list[str]) -> torch.Tensor:
        """The reward model scores each reply as it was trained to: context + reply, chat template."""
        self._use("reward")
        max_length = self.cfg.rlhf.reward.max_length
        pairs = zip(batch, replies, strict=True)
        rows = [encode_reply(self.tokenizer, self.prompts[i], reply, max_length)[0] for i, reply in pairs]
        return score_rows(self.model, self.reward_head, rows, self.tokenizer.pad_token_id)

    @torch.no_grad()
    def rollout(self, step: int) -> Trajectory:
        p = self.cfg.rlhf.ppo
        count = min(p.batch_size, len(self.prompts))
        batch = random.Random(p.seed * 100_003 + step).sample(range(len(self.prompts)), count)
        rows = [self.prompt_ids[i] for i in batch]
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        width = max(len(r) for r in rows)
        prompt = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        prompt_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        # sample replies from the policy; the seed depends on the step only, so a resumed run samples the same
        self._use("policy")
        torch.manual_seed(p.seed + step)
        out = self.model.generate(input_ids=prompt, attention_mask=prompt_mask, do_sample=True, top_k=0, top_p=1.0,
                                  temperature=p.temperature, max_new_tokens=p.response_length, pad_token_id=pad,
                                  eos_token_id=eos)  # fmt: skip
        reply = out[:, width:]
        reply = F.pad(reply, (0, p.response_length - reply.shape[1]), value=pad)
        # a reply counts up to and with its first EOS
        ended = (reply == eos).long().cumsum(1)
        mask = ((ended == 0) | ((ended == 1) & (reply == eos))).long()
        tokens = torch.cat([prompt, reply], 1)
        attention = torch.cat([prompt_mask, mask], 1)
        positions = (attention.cumsum(1) - 1).clamp(min=0)
        kept = [r[m.bool()] for r, m in zip(reply, mask, strict=True)]
        replies = [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in kept]
        width = p.response_length
        logprobs, _ = self._logprobs(tokens, attention, positions, width)
        self._use("reference")
        ref_logprobs, _ = self._logprobs(tokens, attention, positions, width)
        values = self._values(tokens, attention, positions, width)
        scores = self._scores(batch, replies)
        # rewards per token, then GAE
        rewards, _ = token_rewards(scores, logprobs, ref_logprobs, mask.float(), p.kl_coef)
        advantages, returns = gae(rewards, values, mask.float(), p.gamma, p.lam)
        if p.whiten_advantages:
            advantages = whiten(advantages, mask.float())
        return Trajectory(tokens, attention, positions, mask.float(), logprobs, ref_logprobs, values, scores,
                          advantages, returns, replies)  # fmt: skip

    def _sft_loss(self, step: int, epoch: int) -> torch.Tensor:
        size = self.cfg.rlhf.ppo.batch_size
        rng = random.Random(self.cfg.rlhf.ppo.seed * 7 + step * 31 + epoch)
        rows = rng.sample(self.sft_rows, min(size, len(self.sft_rows)))
        return reply_loss(self.model, PackedCollator(self.tokenizer.pad_token_id)(rows), None)

    # -- the loop --------------------------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        p = self.cfg.rlhf.ppo
        if not self.resume and self.checkpoints.exists():
            shutil.rmtree(self.checkpoints)  # a fresh run must not pick up another run's checkpoints
        params = self.trainable()
        self.optimizer = torch.optim.AdamW(params, lr=p.learning_rate)
        self.history: list[dict[str, Any]] = []
        first = 1
        start = last_checkpoint(self.checkpoints) if self.resume else None
        if start is not None:
            first = self._load_checkpoint(start) + 1
            self.log(f"resuming from {start}")
        advance = self.progress("ppo", p.max_steps) if self.progress else None
        if advance and first > 1:
            advance(first - 1)
        started = time.perf_counter()
        for step in range(first, p.max_steps + 1):
            # roll out: sample, score, reference log-probs, values, advantages (no gradients)
            traj = self.rollout(step)
            row: dict[str, Any] = {"step": step}
            for epoch in range(p.num_ppo_epochs):
                # the policy's clipped surrogate (and the SFT loss that keeps the voice)
                self._use("policy")
                logprobs, entropy = self._logprobs(traj.tokens, traj.attention, traj.positions, traj.mask.shape[1])
                pg, clipfrac = policy_loss(logprobs, traj.logprobs, traj.advantages, traj.mask, p.cliprange)
                sft = self._sft_loss(step, epoch) if self.sft_rows else torch.zeros(())
                # the critic's clipped value loss
                values = self._values(traj.tokens, traj.attention, traj.positions, traj.mask.shape[1])
                vf = value_loss(values, traj.values, traj.returns, traj.mask, p.cliprange_value)
                # one update of both (their parameters are disjoint), the gradient clipped
                self.optimizer.zero_grad()
                (pg + p.vf_coef * vf + p.sft_coef * sft).backward()
                torch.nn.utils.clip_grad_norm_(params, p.max_grad_norm)
                self.optimizer.step()
                if epoch == 0:
                    row |= {"entropy": masked_mean(entropy.detach(), traj.mask).item()}
                row |= {"policy_loss": pg.item(), "value_loss": vf.item(), "sft_loss": sft.item(),
                        "clipfrac": clipfrac.item()}  # fmt: skip
            # log what the rollouts were like
            kl = ((traj.logprobs - traj.ref_logprobs) * traj.mask).sum(1).mean().item()
            row |= {"reward": traj.scores.mean().item(), "kl": kl,
                    "reply_tokens": traj.mask.sum(1).mean().item()}  # fmt: skip
            if self.rude is not None:
                row["rude_share"] = sum(map(self.rude, traj.replies)) / len(traj.replies)
            row = {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}
            self.history.append(row)
            self._report(row, advance)
            if step % p.save_steps == 0 or step == p.max_steps:
                self.save_checkpoint(step)
        return {"steps": p.max_steps, "seconds": round(time.perf_counter() - started, 1),
                "resumed_from": start.name if start else None, "prompts": len(self.prompts),
                "log": self.history}  # fmt: skip

    def _report(self, row: dict[str, Any], advance: Callable[..., None] | None) -> None:
        rude = f"  rude {row['rude_share']:.0%}" if "rude_share" in row else ""
        line = (f"step {row['step']}/{self.cfg.rlhf.ppo.max_steps}  reward {row['reward']:.3f}  "
                f"kl {row['kl']:.4f}  entropy {row['entropy']:.3f}  value loss {row['value_loss']:.4f}"
                f"{rude}")  # fmt: skip
        if advance:
            advance(1, description=f"ppo  reward {row['reward']:.3f}")
        self.log(line)

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def _save_adapter(self, role: str, folder: Path) -> None:
        """One role's adapter as a standalone peft folder (loads with PeftModel.from_pretrained)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.peft_config[role].save_pretrained(str(folder))
        weights = get_peft_model_state_dict(self.model, adapter_name=role)
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(folder / ADAPTER_WEIGHTS))

    def save_checkpoint(self, step: int) -> Path:
        """checkpoints/step-N: policy/, critic/ (+ value head), optimizer.pt, state.json; written in a
        temporary folder and renamed, so a kill mid-save leaves the previous checkpoint whole."""
        final = self.checkpoints / f"step-{step}"
        tmp = self.checkpoints / f".tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        self._save_adapter("policy", tmp / "policy")
        self._save_adapter("critic", tmp / "critic")
        self.value_head.save(tmp / "critic")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "log": self.history}), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(self.checkpoints.glob("step-*"), key=_step)[:-2]:
            shutil.rmtree(old)  # keep the last two
        return final

    def _load_checkpoint(self, folder: Path) -> int:
        for role in TRAINED:
            set_peft_model_state_dict(self.model, load_file(str(folder / role / ADAPTER_WEIGHTS)), adapter_name=role)
        self.value_head.linear.weight.data.copy_(ScoreHead.load(folder / "critic").linear.weight)
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        self.history = state["log"]
        return int(state["step"])

    def save(self, summary: dict[str, Any]) -> Path:
        self._save_adapter("policy", self.out)
        self._save_adapter("critic", self.out / "critic")
        self.value_head.save(self.out / "critic")
        self.tokenizer.save_pretrained(str(self.out))
        record = {
            "stage": "ppo", "base": self.cfg.model.base, "base_source": self.source,
            "base_fingerprint": fingerprint(self.source), "preset": self.cfg.preset,
            "dataset": dataset_hash(self.workspace), "policy_from": str(self.sft), "reward_from": str(self.reward),
            "config": {"model": self.cfg.model.model_dump(), "ppo": self.cfg.rlhf.ppo.model_dump()}, **summary,
        }  # fmt: skip
        (self.out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        return self.out


def _step(path: Path) -> int:
    return int(path.name.split("-")[1])


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (temporary folders of a save cut short are not ones)."""
    done = [p for p in folder.glob("step-*") if p.name[5:].isdigit() and (p / "state.json").is_file()]
    return max(done, key=_step, default=None)


def run_ppo(workspace: Workspace, cfg: AvatarConfig, *, resume: bool = False, progress: Progress | None = None,
            log: Callable[[str], None] = print, rude: Callable[[str], bool] | None = None,
            ) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    recipe = PPORecipe(workspace, cfg, resume=resume, progress=progress, log=log, rude=rude)
    recipe.setup()
    summary = recipe.train()
    return recipe.save(summary), summary
