"""Recipe: LoRA supervised fine-tuning on your replies -> WORKSPACE/adapters/sft/.

    wechat-avatar train sft [--preset tiny-cpu] [--resume]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wechat_avatar train sft ...

transformers' Trainer runs the loop (with peft's LoRA); this file decides what it sees:
- samples tokenized here (train/data.py) so that only the avatar's turns carry loss, for any
  model's chat template;
- with `sft.packing` (the GPU presets) packed per row (train/packing.py): samples share a row
  without attending to each other (tests/test_sft.py checks logits against unpacked runs);
  without it (the default: as fast on a CPU, README Benchmarks) one per row, batched by length;
- logits only where the loss is (train/loss.py).
TRL's SFTTrainer was the first choice and is not used: its packing flattens a batch into one
row (quadratic for the SDPA attention CPUs use), it computes the full vocabulary's logits, and
with our own data preparation nothing of it was left but per-step entropy metrics (3 % of a step).
- checkpoints every `save_steps` with optimizer, scheduler and RNG state: `--resume` after a
  crash or kill -9 continues to the same adapter an uninterrupted run gives.
Outputs: adapter_model.safetensors + adapter_config.json, tokenizer, run.json (base, config,
dataset hash, losses, throughput), loss.svg, checkpoints/.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import dataset_hash, read_split
from wechat_avatar.errors import TrainingError
from wechat_avatar.models.load import RUN_FILE, TINY, fingerprint, load_base, resolve
from wechat_avatar.train.data import IGNORE, encode_conversation
from wechat_avatar.train.loss import ReplyLossTrainer
from wechat_avatar.train.packing import PackedCollator, pack
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[..., None]]
EVAL_SAMPLES = 200  # held-out samples for the loss before/after: enough for a stable mean


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written completely: Trainer writes the weights, then the optimizer
    (and scheduler, RNG), then trainer_state.json last, so a kill mid-save leaves a folder without a
    readable state. Weights and optimizer are checked too: resuming without them would silently start
    the adapter or the optimizer afresh (DeepSpeed keeps its optimizer in global_step*/)."""

    def has(path: Path, *prefixes: str) -> bool:
        return any(child.name.startswith(prefixes) for child in path.iterdir())

    def complete(path: Path) -> bool:
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing, or cut short by a kill mid-write
            return False
        return has(path, "adapter_model", "model", "pytorch_model") and has(path, "optimizer", "global_step")

    done = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit() and complete(p)]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def encode_split(tokenizer: Any, conversations: list[list[dict[str, str]]], max_length: int,
                 loss_on: str) -> dict[str, list[list[int]]]:  # fmt: skip
    """Columns for a datasets.Dataset; samples whose reply was cut away entirely are left out."""
    columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    for conversation in conversations:
        ids, labels = encode_conversation(tokenizer, conversation, max_length, loss_on)
        if any(label != IGNORE for label in labels):
            columns["input_ids"].append(ids)
            columns["labels"].append(labels)
    return columns


class SFTRecipe:
    """setup() loads model and data, train() runs (or resumes) the loop, save() writes the adapter."""

    def __init__(self, workspace: Workspace, cfg: AvatarConfig, *, resume: bool = False,
                 progress: Progress | None = None, log: Callable[[str], None] = print) -> None:  # fmt: skip
        self.workspace, self.cfg, self.resume, self.progress, self.log = workspace, cfg, resume, progress, log
        self.out = workspace.adapter("sft")
        self.checkpoints = self.out / "checkpoints"
        if resume and last_checkpoint(self.checkpoints) is None:
            raise TrainingError(f"nothing to resume: no complete checkpoint in {self.checkpoints}",
                                hint="run without --resume to start training")  # fmt: skip

    def setup(self) -> None:
        s = self.cfg.sft
        conversations = read_split(self.workspace, "train")
        test = read_split(self.workspace, "test")
        self.source = self._base()
        gpu = torch.cuda.is_available()
        # the training arguments come before the model: under `accelerate launch` with ZeRO-3 they set up
        # the process group, so the model loads straight into shards
        self.args = TrainingArguments(
            output_dir=str(self.checkpoints), seed=s.seed, data_seed=s.seed,
            per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum,
            per_device_eval_batch_size=s.batch_size, learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler,
            warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
            num_train_epochs=s.epochs, max_steps=s.max_steps or -1,
            remove_unused_columns=False, prediction_loss_only=True,
            # without packing, batch samples of similar length so little is spent on padding
            train_sampling_strategy="random" if s.packing else "group_by_length",
            logging_steps=s.logging_steps, save_steps=s.save_steps, save_total_limit=s.save_total_limit,
            eval_strategy="steps" if s.eval_steps else "no", eval_steps=s.eval_steps or None,
            bf16=gpu and torch.cuda.is_bf16_supported(), report_to="none", disable_tqdm=True,
            activation_checkpointing=gpu, dataloader_num_workers=0, dataloader_pin_memory=gpu,
        )  # fmt: skip
        self.model, self.tokenizer = load_base(self.source, self.cfg.model)
        # without a KV cache: with one, transformers skips the block mask that keeps packed samples apart
        self.model.config.use_cache = False
        train = encode_split(self.tokenizer, conversations, s.max_length, s.loss_on)
        if not train["input_ids"]:
            raise TrainingError(f"no sample keeps any reply within max_length={s.max_length} tokens",
                                hint="raise sft.max_length")  # fmt: skip
        self.train_set = Dataset.from_dict(pack(train, s.max_length, s.seed) if s.packing else train)
        self.eval_set = Dataset.from_dict(encode_split(self.tokenizer, test[:EVAL_SAMPLES], s.max_length, "last"))
        if not len(self.eval_set):
            self.args.eval_strategy = "no"
        targets: Any = s.lora_targets[0] if s.lora_targets == ["all-linear"] else s.lora_targets
        self.lora = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                               target_modules=targets, task_type="CAUSAL_LM")  # fmt: skip

    def _base(self) -> str:
        """The base model's folder or hub id; the tiny preset's base is (re)built here when stale."""
        if self.cfg.model.base == TINY:
            from wechat_avatar.train.pretrain import build_tiny, is_fresh

            if not is_fresh(self.workspace, self.cfg.model.tiny):
                self.log("building the tiny base model from your messages (train pretrain)")
                build_tiny(self.workspace, self.cfg.model.tiny, self.progress)
        return resolve(self.workspace, self.cfg.model)

    def train(self) -> dict[str, Any]:
        if not self.resume and self.checkpoints.exists():
            shutil.rmtree(self.checkpoints)  # a fresh run must not pick up another run's checkpoints
        set_seed(self.cfg.sft.seed)  # the LoRA weights' initialisation
        if self.cfg.model.load_in_4bit:
            self.model = prepare_model_for_kbit_training(self.model, use_gradient_checkpointing=True)
        model = get_peft_model(self.model, self.lora)
        trainer = ReplyLossTrainer(model=model, args=self.args, train_dataset=self.train_set,
                                   eval_dataset=self.eval_set if len(self.eval_set) else None,
                                   processing_class=self.tokenizer,
                                   data_collator=PackedCollator(self.tokenizer.pad_token_id),
                                   callbacks=[ReportCallback(self.progress, self.log)])  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # our ReportCallback logs instead of raw dicts
        self.trainer = trainer
        before = self._eval_loss()
        started = time.perf_counter()
        start = last_checkpoint(self.checkpoints) if self.resume else None
        if start:  # said and recorded: a resume that silently restarted from step 0 would look the same
            self.log(f"resuming from {start}")
        try:
            result = trainer.train(resume_from_checkpoint=str(start) if start else None)
        except RuntimeError as err:
            if "out of memory" in str(err) or "can't allocate memory" in str(err):
                s = self.cfg.sft
                raise TrainingError(
                    f"out of memory at batch_size {s.batch_size} x max_length {s.max_length}",
                    hint="lower sft.batch_size (raise grad_accum to keep tokens per update) or sft.max_length, "
                    "or pick a smaller preset / QLoRA (--preset qwen2.5-7b-qlora-gpu24)",
                ) from err
            raise
        seconds = time.perf_counter() - started
        return {
            "steps": trainer.state.global_step, "seconds": round(seconds, 1),
            "resumed_from": start.name if start else None,
            "train_loss": round(result.training_loss, 4),
            "eval_loss_before": before, "eval_loss_after": self._eval_loss(),
            "train_rows": len(self.train_set),
            "loss_tokens": int(sum(sum(1 for x in row if x != IGNORE) for row in self.train_set["labels"])),
            "log": [row for row in trainer.state.log_history if "loss" in row or "eval_loss" in row],
        }  # fmt: skip

    def _eval_loss(self) -> float | None:
        if not len(self.eval_set):
            return None
        return round(self.trainer.evaluate()["eval_loss"], 4)

    def save(self, summary: dict[str, Any]) -> Path:
        trainer = self.trainer
        if trainer.is_fsdp_enabled:  # gather the shards: a sharded adapter is useless outside this run
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        trainer.save_model(str(self.out))  # adapter + tokenizer, gathered under ZeRO-3, written by rank 0
        if not trainer.is_world_process_zero():
            return self.out
        record = {
            "stage": "sft", "base": self.cfg.model.base, "base_source": self.source,
            "base_fingerprint": fingerprint(self.source), "preset": self.cfg.preset,
            "dataset": dataset_hash(self.workspace), "train_samples": len(self.train_set),
            "config": {"model": self.cfg.model.model_dump(), "sft": self.cfg.sft.model_dump()}, **summary,
        }  # fmt: skip
        (self.out / RUN_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        plot_losses(record["log"], self.out / "loss.svg")
        return self.out


def run_sft(workspace: Workspace, cfg: AvatarConfig, *, resume: bool = False, progress: Progress | None = None,
            log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    recipe = SFTRecipe(workspace, cfg, resume=resume, progress=progress, log=log)
    recipe.setup()
    summary = recipe.train()
    return recipe.save(summary), summary


def plot_losses(log: list[dict[str, Any]], path: Path) -> None:
    """Training (and held-out) loss against step, as an SVG beside the adapter."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    for key, label in (("loss", "train"), ("eval_loss", "held-out")):
        points = [(row["step"], row[key]) for row in log if key in row]
        if points:
            ax.plot(*zip(*points, strict=True), marker="." if key == "eval_loss" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.savefig(path, format="svg", metadata={"Date": None})


class ReportCallback(TrainerCallback):
    """Progress bar with loss and ETA, and one log line per logging step (also when not on a terminal)."""

    def __init__(self, progress: Progress | None, log: Callable[[str], None]) -> None:
        self.progress, self.log = progress, log
        self.advance: Callable[..., None] | None = None
        self.started, self.first = 0.0, 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.advance = self.progress("sft", state.max_steps) if self.progress else None
        self.started, self.first = time.perf_counter(), state.global_step
        if self.advance and state.global_step:
            self.advance(state.global_step)  # resumed: the bar starts where the run left off

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.advance:
            self.advance(1)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        if self.advance:
            self.advance(0, description=f"sft  loss {logs['loss']:.4f}")
        rate = (time.perf_counter() - self.started) / max(state.global_step - self.first, 1)
        eta = int(rate * (state.max_steps - state.global_step))
        self.log(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                 f"lr {logs.get('learning_rate', 0):.2e}  eta {eta // 60}:{eta % 60:02d}")  # fmt: skip
