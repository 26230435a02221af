"""Recipe: GRPO with the trained reward model as its reward -> WORKSPACE/adapters/grpo/ (TRL's GRPOTrainer).

    wechat-avatar train grpo [--max-steps N]

For each ranked context, `num_generations` replies are sampled from the policy (the SFT adapter,
trained), scored by the reward model of `train reward` (its adapter + score head, read exactly as
PPO reads it), and each reply's advantage is its score against its group's: no critic. The
reference for the KL term is TRL's untouched copy of the SFT adapter ("ref").
The reward model runs on its own copy of the base: TRL calls a reward function while the policy
is mid-step, so switching the policy model's adapters there is not safe.
Outputs: adapter_config.json, adapter_model.safetensors, tokenizer, run.json (log).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import dataset_hash, self_name
from wechat_avatar.errors import TrainingError
from wechat_avatar.models.load import RUN_FILE, check_adapter, fingerprint, load_base, resolve
from wechat_avatar.rlhf.ranked import conversation
from wechat_avatar.train.dpo import named, token_length
from wechat_avatar.train.pairs import fit_prompt, read_pairs
from wechat_avatar.train.scoring import ScoreHead, encode_reply, score_rows
from wechat_avatar.train.sft import ReportCallback
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]
RewardFunction = Callable[..., list[float]]


def reward_function(workspace: Workspace, cfg: AvatarConfig, reward: Path) -> RewardFunction:
    """TRL's reward-function shape over the reward model: (prompts, completions, ...) -> one score each."""
    from peft import PeftModel

    base, tokenizer = load_base(resolve(workspace, cfg.model), cfg.model)
    model = PeftModel.from_pretrained(base, str(reward)).eval()
    head = ScoreHead.load(reward).requires_grad_(False)
    max_length = cfg.rlhf.reward.max_length

    @torch.no_grad()
    def reward_model(prompts: list[list[dict[str, str]]], completions: list[list[dict[str, str]]],
                     **_: Any) -> list[float]:  # fmt: skip
        rows = [encode_reply(tokenizer, p, c[-1]["content"], max_length)[0]
                for p, c in zip(prompts, completions, strict=True)]  # fmt: skip
        return score_rows(model, head, rows, tokenizer.pad_token_id).tolist()

    return reward_model


def run_grpo(workspace: Workspace, cfg: AvatarConfig, *, progress: Progress | None = None,
             log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    g = cfg.rlhf.grpo
    sft, reward = workspace.trained_adapter("sft"), workspace.trained_adapter("reward")
    if sft is None or reward is None:
        missing = "an SFT adapter" if sft is None else "a reward model"
        raise TrainingError(f"GRPO needs {missing} first", hint="run `wechat-avatar train sft` and "
                            "`wechat-avatar train reward`")  # fmt: skip
    for adapter in (sft, reward):
        check_adapter(workspace, cfg, adapter)
    out = workspace.adapter("grpo")
    source = resolve(workspace, cfg.model)
    base, tokenizer = load_base(source, cfg.model)
    records, _ = read_pairs(workspace)
    name = self_name(workspace)
    system = cfg.dataset.system_prompt.format(name=name)
    budget = cfg.rlhf.reward.max_length - g.max_completion_length
    prompts = [fit_prompt(conversation(s, name, system, cfg.dataset.context_window), token_length(tokenizer),
                          budget)[0] for s in sorted({r.source for r in records})]  # fmt: skip
    model = PeftModel.from_pretrained(base, str(sft), is_trainable=True)
    args = GRPOConfig(
        output_dir=str(out / "checkpoints"), learning_rate=g.learning_rate, beta=g.beta,
        per_device_train_batch_size=g.batch_size, num_generations=g.num_generations,
        max_completion_length=g.max_completion_length, temperature=g.temperature, max_steps=g.max_steps,
        seed=g.seed, bf16=False, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
    )  # fmt: skip
    report = ReportCallback(named(progress, "grpo"), log)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_function(workspace, cfg, reward), args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tokenizer, callbacks=[report])  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    result = trainer.train()
    model.save_pretrained(str(out), selected_adapters=["default"])  # not TRL's "ref" copy of the SFT adapter
    tokenizer.save_pretrained(str(out))
    history = [row for row in trainer.state.log_history if "reward" in row]
    summary = {
        "steps": trainer.state.global_step, "seconds": round(time.perf_counter() - started, 1),
        "prompts": len(prompts), "train_loss": round(result.training_loss, 4), "log": history,
    }  # fmt: skip
    record = {
        "stage": "grpo", "base": cfg.model.base, "base_source": source, "base_fingerprint": fingerprint(source),
        "preset": cfg.preset, "dataset": dataset_hash(workspace), "policy_from": str(sft),
        "reward_from": str(reward), "config": {"model": cfg.model.model_dump(), "grpo": g.model_dump()}, **summary,
    }  # fmt: skip
    (out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    return out, summary
