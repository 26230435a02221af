"""SFT throughput: our recipe (per-row packing) against the seed's padded Trainer, in one run.

    python benchmarks/sft_throughput.py [--steps 16] [--messages 5000] [--keep DIR] [--skip-smollm2]

One synthetic history (synth -> ingest -> dataset through the real CLI), one tiny base model
(`build_tiny`, the tiny-cpu preset: Qwen2, hidden 256, 4 layers, Qwen's vocabulary trimmed to
the corpus), then the same number of optimizer steps of
  (a) our path: the real SFTRecipe (wechat_avatar/train/sft.py): TRL's SFTTrainer over rows
      packed by train/packing.py;
  (b) the seed's setup: a plain transformers.Trainer over the same samples one per row, padded
      to the longest of each batch with an attention mask, in random order;
both with the preset's batch size, LoRA, max_length, learning rate and seed, and the same labels
(encode_conversation: loss on the avatar's turns only). Both start from the same saved base.

Timed: the training loop only, from Trainer's on_train_begin to on_train_end (a callback), so
model loading, tokenizing, packing and the recipe's held-out loss before/after are excluded.
Counted: real (non-pad) input tokens of every training forward pass (a hook on the decoder).
Prints tokens/s of both (wall clock, and per CPU second: steadier when other work shares the
cores) and the ratio a/b. Target: >= 2. Then, unless --skip-smollm2, the peak RSS of
`wechat-avatar train sft --preset smollm2-cpu --max-steps N` in a child process.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import run_child  # the sibling benchmark's child-process timer (wall, peak RSS, ...)

CLI = [sys.executable, "-m", "wechat_avatar"]


class LoopClock:
    """Wall and CPU seconds between on_train_begin and on_train_end of the last trainer run."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._start = (0.0, 0.0)

    def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_train_end(self, *args: Any, **kwargs: Any) -> None:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]


class TokenCounter:
    """Counts real and padded input tokens of training forwards (eval forwards are left out)."""

    def __init__(self, decoder: Any, pad_id: int) -> None:
        self.real = self.padded = self.forwards = 0
        self.pad_id = pad_id
        # a pre-hook on the decoder (Qwen2Model): PEFT calls the outer model's forward directly,
        # which bypasses hooks there, but the decoder is always called as a module
        decoder.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not module.training:
            return
        ids, mask = kwargs.get("input_ids", args[0] if args else None), kwargs.get("attention_mask")
        self.real += int(mask.sum()) if mask is not None else int((ids != self.pad_id).sum())
        self.padded += ids.numel()
        self.forwards += 1


def prepare_workspace(root: Path, messages: int) -> Path:
    """synth -> ingest -> dataset through the CLI; a small test split keeps held-out losses quick."""
    export, workspace = root / "export", root / "workspace"
    if (workspace / "dataset" / "messages" / "train.jsonl").is_file():
        return workspace
    steps = [
        ("synth", ["synth", str(export), "--messages", str(messages), "--seed", "1"]),
        ("ingest", ["ingest", str(export / "EnMicroMsg.db"), str(export / "shared_prefs"), "--workspace",
                    str(workspace)]),
        ("dataset", ["dataset", "--workspace", str(workspace), "--format", "messages", "--test-ratio", "0.02"]),
    ]  # fmt: skip
    for name, args in steps:
        print(f"setup    {name:<8} {run_child([*CLI, *args])[0]:6.1f} s")
    return workspace


def tiny_config(steps: int, pretrain_steps: int) -> Any:
    from wechat_avatar.config import load_config

    cfg = load_config(None, preset="tiny-cpu")
    # the base's weights do not change the cost of a step: a short pre-training keeps setup quick
    cfg.model.tiny = cfg.model.tiny.model_copy(update={"pretrain_steps": pretrain_steps})
    # no checkpoint inside the timed loop: the baseline writes none either
    cfg.sft = cfg.sft.model_copy(update={"max_steps": steps, "save_steps": steps + 1, "logging_steps": steps})
    return cfg


def run_ours(workspace: Path, cfg: Any, clock: LoopClock) -> dict[str, float]:
    from wechat_avatar.train.data import IGNORE
    from wechat_avatar.train.sft import SFTRecipe

    recipe = SFTRecipe(workspace, cfg, log=lambda line: None)
    recipe.setup()
    counter = TokenCounter(recipe.model.model, recipe.tokenizer.pad_token_id)
    recipe.train()
    state = recipe.trainer.state
    labels = recipe.train_set["labels"]
    share = sum(t != IGNORE for row in labels for t in row) / sum(len(row) for row in labels)
    return {"rows": len(recipe.train_set), "loss_share": share, "wall": clock.wall, "cpu": clock.cpu,
            "real": counter.real, "padded": counter.padded, "forwards": counter.forwards, "steps": state.global_step,
            "loss": next(row["train_loss"] for row in state.log_history if "train_loss" in row)}  # fmt: skip


def run_seed(workspace: Path, cfg: Any, clock: LoopClock, out: Path) -> dict[str, float]:
    """The seed's setup: one sample per row, padded per batch, plain Trainer, no packing."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    from wechat_avatar.models.load import load_base, resolve
    from wechat_avatar.train.data import IGNORE, read_split
    from wechat_avatar.train.sft import encode_split

    s = cfg.sft
    model, tokenizer = load_base(resolve(workspace, cfg.model), cfg.model)
    model.config.use_cache = False  # as in the recipe
    samples = encode_split(tokenizer, read_split(workspace, "train"), s.max_length, s.loss_on)
    set_seed(s.seed)  # same LoRA initialisation as the recipe (it seeds before get_peft_model too)
    lora = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules=copy.copy(s.lora_targets), task_type="CAUSAL_LM")  # fmt: skip
    peft_model = get_peft_model(model, lora)
    counter = TokenCounter(model.model, tokenizer.pad_token_id)
    args = TrainingArguments(
        output_dir=str(out), seed=s.seed, data_seed=s.seed, per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum, learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler,
        warmup_steps=s.warmup_ratio, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
        max_steps=s.max_steps, logging_steps=s.max_steps, save_strategy="no", report_to="none", bf16=False,
        disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    # pad to the longest in the batch (a multiple of 8, as our collator does), labels padded with -100
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", pad_to_multiple_of=8, label_pad_token_id=IGNORE)
    trainer = Trainer(model=peft_model, args=args, train_dataset=Dataset.from_dict(samples), data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # as the recipe does: no raw log dicts on stdout
    result = trainer.train()
    return {"rows": len(samples["input_ids"]), "wall": clock.wall, "cpu": clock.cpu, "real": counter.real,
            "padded": counter.padded, "forwards": counter.forwards, "steps": trainer.state.global_step,
            "loss": result.training_loss}  # fmt: skip


def report(name: str, r: dict[str, float]) -> None:
    print(f"{name}  {int(r['steps'])} steps, {int(r['forwards'])} forwards over {int(r['rows']):,} rows: "
          f"{int(r['real']):,} real tokens of {int(r['padded']):,} ({1 - r['real'] / r['padded']:.0%} padding), "
          f"train loss {r['loss']:.3f}")  # fmt: skip
    print(f"{name}  loop {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU  ->  {r['real'] / r['wall']:8,.0f} tokens/s, "
          f"{r['real'] / r['cpu']:8,.0f} tokens per CPU s  ({r['wall'] / r['steps']:.2f} s/step)")  # fmt: skip


def quiet_child(args: list[str], log: Path) -> tuple[float, int]:
    """run_child with the child's stderr (progress bars, warnings) in a file, shown only on failure."""
    saved = os.dup(2)
    with log.open("w") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            result = run_child(args)
        except SystemExit:
            os.dup2(saved, 2)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return result[0], result[1]


def smollm2_rss(workspace: Path, root: Path, steps: int) -> None:
    """Peak RSS of SFT with the SmolLM2 preset, after converting the GGUF in a child of its own."""
    convert = [sys.executable, "-c", "from wechat_avatar.models.smollm2 import ensure_smollm2; ensure_smollm2()"]
    wall, peak = quiet_child(convert, root / "convert.log")
    print(f"smollm2  convert/cache check  {wall:6.1f} s, peak RSS {peak / 2**20:,.0f} MiB  (once per machine)")
    ws = root / "ws-smollm2"  # its own copy: the run writes adapters/sft
    if not ws.exists():
        shutil.copytree(workspace / "dataset", ws / "dataset")
    args = [*CLI, "train", "sft", "--preset", "smollm2-cpu", "--max-steps", str(steps), "--workspace", str(ws)]
    wall, peak = quiet_child(args, root / "smollm2.log")
    print(f"smollm2  train sft --preset smollm2-cpu --max-steps {steps}: {wall:6.1f} s (with loading and the "
          f"held-out loss before/after), peak RSS {peak / 2**20:,.0f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps of each side")
    parser.add_argument("--messages", type=int, default=5000, help="size of the synthetic history")
    parser.add_argument("--pretrain-steps", type=int, default=20, help="pre-training of the tiny base (setup only)")
    parser.add_argument("--smollm2-steps", type=int, default=3)
    parser.add_argument("--skip-smollm2", action="store_true", help="skip the SmolLM2 peak-RSS run")
    parser.add_argument("--keep", type=Path, help="keep the export and workspace here and reuse them next time")
    args = parser.parse_args()

    import torch
    import transformers.trainer
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging

    from wechat_avatar.models.tiny import build_tiny, is_fresh

    warnings.simplefilter("ignore")  # library deprecation notices would bury the figures
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # one clock inside every Trainer this process builds (the recipe's SFTTrainer and the baseline's
    # Trainer alike): DEFAULT_CALLBACKS is read when a Trainer is constructed
    clock = LoopClock()
    transformers.trainer.DEFAULT_CALLBACKS.append(type("Clock", (TrainerCallback,), {
        "on_train_begin": lambda self, *a, **k: clock.on_train_begin(),
        "on_train_end": lambda self, *a, **k: clock.on_train_end()})())  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    base = args.keep or root
    try:
        workspace = prepare_workspace(base, args.messages)
        cfg = tiny_config(args.steps, args.pretrain_steps)
        started = time.perf_counter()
        reused = is_fresh(workspace, cfg.model.tiny)  # a kept workspace keeps its base
        if not reused:
            build_tiny(workspace, cfg.model.tiny)
        t, s = cfg.model.tiny, cfg.sft
        print(f"setup    build_tiny {time.perf_counter() - started:6.1f} s  (hidden {t.hidden_size}, "
              f"{t.layers} layers, {t.pretrain_steps} pre-training steps{'; reused' if reused else ''})")  # fmt: skip
        print(f"config   tiny-cpu preset: batch {s.batch_size} x grad_accum {s.grad_accum}, max_length {s.max_length}, "
              f"LoRA r{s.lora_r} on {','.join(s.lora_targets)}, {s.max_steps} steps each; "
              f"torch threads {torch.get_num_threads()}")  # fmt: skip
        # ours first: whatever warms up in the process (allocator, kernels) favours the baseline
        ours = run_ours(workspace, cfg, clock)
        report("(a) ours   ", ours)
        print(f"(a) ours     loss on reply tokens only: {ours['loss_share']:.0%} of the training set's tokens "
              "(the vocabulary projection runs only there)")  # fmt: skip
        seed = run_seed(workspace, cfg, clock, root / "seed-trainer")
        report("(b) seed's ", seed)
        wall = (ours["real"] / ours["wall"]) / (seed["real"] / seed["wall"])
        cpu = (ours["real"] / ours["cpu"]) / (seed["real"] / seed["cpu"])
        print(f"ratio a/b  {wall:.2f} tokens/s wall, {cpu:.2f} per CPU second   (target >= 2)")
        if not args.skip_smollm2:
            smollm2_rss(workspace, base, args.smollm2_steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
