"""Recipe: DPO on the ranked pairs -> WORKSPACE/adapters/dpo/ (TRL's DPOTrainer).

    wechat-avatar train dpo [--max-steps N]

The SFT adapter is trained on every ordered pair of rlhf/ranked.py, with itself (an untouched copy
TRL keeps as the adapter "ref") as the reference: no reward model, no sampling. Prompts come from
the project's prompt builder; a prompt too long for `max_length` loses its oldest turns here
(counted in run.json), since TRL would cut the reply's end or drop the pair.
Outputs: adapter_config.json, adapter_model.safetensors, tokenizer, run.json (log), loss.svg.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import dataset_hash, self_name
from wechat_avatar.errors import TrainingError
from wechat_avatar.models.load import RUN_FILE, check_adapter, fingerprint, load_base, resolve
from wechat_avatar.rlhf.ranked import conversation
from wechat_avatar.train.pairs import all_pairs, fit_prompt, read_pairs
from wechat_avatar.train.sft import ReportCallback, plot_losses
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]


def named(progress: Progress | None, stage: str) -> Progress | None:
    """The progress hook with this stage's name on the bar (ReportCallback names it sft)."""
    return (lambda _, total: progress(stage, total)) if progress else None


def token_length(tokenizer: Any) -> Callable[[list[dict[str, str]]], int]:
    """Tokens of a prompt as the chat template writes it, generation prompt included."""
    return lambda messages: len(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                              return_dict=False))  # fmt: skip


def preference_rows(workspace: Workspace, cfg: AvatarConfig, tokenizer: Any) -> tuple[list[dict[str, Any]],
                                                                                       dict[str, int]]:  # fmt: skip
    """TRL's conversational preference rows (prompt, chosen, rejected) and what fitting them cost."""
    records, skipped = read_pairs(workspace)
    name, budget = self_name(workspace), cfg.rlhf.dpo.max_length
    system = cfg.dataset.system_prompt.format(name=name)
    length = token_length(tokenizer)
    rows, cut = [], {"pairs_truncated": 0, "messages_dropped": 0, "skipped_records": sum(skipped.values())}
    for pair in all_pairs(records):
        reply = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in (pair.chosen, pair.rejected))
        messages = conversation(pair.source, name, system, cfg.dataset.context_window)
        messages, dropped = fit_prompt(messages, length, budget - reply - 2)  # 2: the reply's end marks
        cut["pairs_truncated"] += dropped > 0
        cut["messages_dropped"] += dropped
        rows.append({"prompt": messages, "chosen": [{"role": "assistant", "content": pair.chosen}],
                     "rejected": [{"role": "assistant", "content": pair.rejected}]})  # fmt: skip
    return rows, cut


def run_dpo(workspace: Workspace, cfg: AvatarConfig, *, progress: Progress | None = None,
            log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    d = cfg.rlhf.dpo
    sft = workspace.trained_adapter("sft")
    if sft is None:
        raise TrainingError(f"no SFT adapter in {workspace.adapter('sft')}: DPO starts from it",
                            hint="run `wechat-avatar train sft` first")  # fmt: skip
    check_adapter(workspace, cfg, sft)
    out = workspace.adapter("dpo")
    source = resolve(workspace, cfg.model)
    base, tokenizer = load_base(source, cfg.model)
    rows, cut = preference_rows(workspace, cfg, tokenizer)
    # the SFT adapter, trainable; TRL copies it as "ref" and scores the reference with that copy
    model = PeftModel.from_pretrained(base, str(sft), is_trainable=True)
    args = DPOConfig(
        output_dir=str(out / "checkpoints"), beta=d.beta, learning_rate=d.learning_rate,
        per_device_train_batch_size=d.batch_size, num_train_epochs=d.epochs, max_steps=d.max_steps or -1,
        max_length=None,  # prompts were fitted above: TRL's own truncation would cut replies
        seed=d.seed, bf16=False, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
    )  # fmt: skip
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=[ReportCallback(named(progress, "dpo"), log)])  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    result = trainer.train()
    model.save_pretrained(str(out), selected_adapters=["default"])  # not TRL's "ref" copy of the SFT adapter
    tokenizer.save_pretrained(str(out))
    history = [row for row in trainer.state.log_history if "loss" in row]
    summary = {
        "steps": trainer.state.global_step, "seconds": round(time.perf_counter() - started, 1), "pairs": len(rows),
        "train_loss": round(result.training_loss, 4), **cut,
        "reward_accuracy": history[-1].get("rewards/accuracies") if history else None, "log": history,
    }  # fmt: skip
    record = {
        "stage": "dpo", "base": cfg.model.base, "base_source": source, "base_fingerprint": fingerprint(source),
        "preset": cfg.preset, "dataset": dataset_hash(workspace), "policy_from": str(sft),
        "config": {"model": cfg.model.model_dump(), "dpo": d.model_dump()}, **summary,
    }  # fmt: skip
    (out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    plot_losses(history, out / "loss.svg")
    return out, summary
