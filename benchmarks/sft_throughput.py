"""SFT throughput: our packed recipe against three padded setups, all in one run.

    python benchmarks/sft_throughput.py [--steps 16] [--messages 5000] [--repeat N] [--keep DIR]
        [--skip-smollm2] [--preset tiny-cpu] [--attn flash_attention_2] [--threads N]

One synthetic history (synth -> ingest -> dataset through the real CLI), one base model (by
default `build_tiny`, the tiny-cpu preset: Qwen2, hidden 256, 4 layers, Qwen's vocabulary trimmed
to the corpus; on a GPU, e.g. `--preset qwen2.5-1.5b-gpu16 --attn flash_attention_2`, where
packed rows run padding-free), then four trainings from the same base:
  (a) packed:  the real SFTRecipe with `sft.packing: true` (train/packing.py rows, random
      order, reply-only vocabulary projection from train/loss.py);
  (b) grouped: the real SFTRecipe with `sft.packing: false` (one sample per row, padded per
      batch, `train_sampling_strategy="group_by_length"`, the same reply-only projection);
  (c) a careful user's padded Trainer: plain transformers.Trainer, group_by_length, attention
      mask, the model's own loss (logits at every position);
  (d) the seed's setup: the same plain Trainer in random order (the weakest baseline).
All with the preset's batch size, LoRA, max_length, learning rate, seed and labels
(encode_conversation: loss on the avatar's turns only). (a) runs --steps optimizer steps; the
others run as many steps as it takes to see the same number of samples (a packed row holds
several), so every side does the same work.

a/b is what packing itself buys over length grouping; b/c is what the reply-only projection
buys (same batching, logits everywhere vs only on reply tokens); c/d is what length grouping
buys over random order. The projection's share is also computed analytically: lm_head's share
of a forward's matmul FLOPs, for the benchmarked model and for Qwen2.5-1.5B/7B shapes.

With --repeat N the four run round-robin N times and each side keeps its best wall and CPU time
(other work on the cores only ever slows a run down).
Timed: the training loop only, from Trainer's on_train_begin to on_train_end (a callback), so
model loading, tokenizing, packing and the recipe's held-out loss before/after are excluded.
Counted: real (non-pad) input tokens of every training forward pass (a hook on the decoder).
Prints tokens/s (wall clock, and per CPU second: steadier when other work shares the cores)
and the ratios. Then, unless --skip-smollm2, the peak RSS of
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

from wechat_avatar.workspace import Workspace

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


def prepare_workspace(root: Path, messages: int) -> Workspace:
    """synth -> ingest -> dataset through the CLI; a small test split keeps held-out losses quick."""
    export, workspace = root / "export", Workspace(root / "workspace")
    if workspace.split("train").is_file():
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


def bench_config(preset: str, steps: int, pretrain_steps: int, attn: str | None) -> Any:
    from wechat_avatar.config import load_config

    cfg = load_config(None, preset=preset)
    # the base's weights do not change the cost of a step: a short pre-training keeps setup quick
    cfg.model.tiny = cfg.model.tiny.model_copy(update={"pretrain_steps": pretrain_steps})
    if attn:
        cfg.model.attn_implementation = attn
    # no checkpoint inside the timed loop: the baseline writes none either;
    # (a) packs whatever the preset's default: the padded sides switch it off themselves
    cfg.sft = cfg.sft.model_copy(update={"max_steps": steps, "save_steps": steps + 1, "logging_steps": steps,
                                         "packing": True})  # fmt: skip
    return cfg


def run_recipe(workspace: Workspace, cfg: Any, clock: LoopClock) -> dict[str, Any]:
    """The real SFTRecipe, packed or grouped by length as cfg.sft.packing says."""
    from wechat_avatar.train.data import IGNORE
    from wechat_avatar.train.sft import SFTRecipe

    recipe = SFTRecipe(workspace, cfg, log=lambda line: None)
    recipe.setup()
    counter = TokenCounter(recipe.model.model, recipe.tokenizer.pad_token_id)
    recipe.train()
    state = recipe.trainer.state
    labels = recipe.train_set["labels"]
    share = sum(t != IGNORE for row in labels for t in row) / sum(len(row) for row in labels)
    samples = (sum(row.count(0) for row in recipe.train_set["position_ids"]) if cfg.sft.packing
               else len(recipe.train_set))  # a packed sample starts where its positions restart at 0
    return {"rows": len(recipe.train_set), "samples": samples, "loss_share": share, "wall": clock.wall,
            "cpu": clock.cpu, "real": counter.real, "padded": counter.padded, "forwards": counter.forwards,
            "steps": state.global_step, "config": recipe.model.config,
            "loss": next(row["train_loss"] for row in state.log_history if "train_loss" in row)}  # fmt: skip


def run_trainer(workspace: Workspace, cfg: Any, clock: LoopClock, out: Path, sampling: str) -> dict[str, float]:
    """A plain padded Trainer: one sample per row, attention mask, the model's own full-logits loss."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    from wechat_avatar.dataset.splits import read_split
    from wechat_avatar.models.load import load_base, resolve
    from wechat_avatar.train.data import IGNORE
    from wechat_avatar.train.sft import encode_split

    s = cfg.sft
    gpu = torch.cuda.is_available()
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
        max_steps=s.max_steps, logging_steps=s.max_steps, save_strategy="no", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, train_sampling_strategy=sampling,
        # on a GPU the recipe's own precision and activation checkpointing (sft.py), so only batching differs
        bf16=gpu and torch.cuda.is_bf16_supported(), activation_checkpointing=gpu, dataloader_pin_memory=gpu,
    )  # fmt: skip
    # pad to the longest in the batch (a multiple of 8, as our collator does), labels padded with -100
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", pad_to_multiple_of=8, label_pad_token_id=IGNORE)
    trainer = Trainer(model=peft_model, args=args, train_dataset=Dataset.from_dict(samples), data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # as the recipe does: no raw log dicts on stdout
    result = trainer.train()
    return {"rows": len(samples["input_ids"]), "wall": clock.wall, "cpu": clock.cpu, "real": counter.real,
            "padded": counter.padded, "forwards": counter.forwards, "steps": trainer.state.global_step,
            "loss": result.training_loss}  # fmt: skip


def samples_per_row(workspace: Workspace, cfg: Any) -> float:
    """Samples per packed row of the recipe's training set, without training."""
    from wechat_avatar.train.sft import SFTRecipe

    recipe = SFTRecipe(workspace, cfg, log=lambda line: None)
    recipe.setup()
    return sum(row.count(0) for row in recipe.train_set["position_ids"]) / len(recipe.train_set)


# (name, hidden, intermediate, layers, heads, kv_heads, vocab, context) of the GPU presets' models
QWEN_SHAPES = [("Qwen2.5-1.5B", 1536, 8960, 28, 12, 2, 151936, 1024),
               ("Qwen2.5-7B", 3584, 18944, 28, 28, 4, 152064, 2048)]


def head_share(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int,
               context: float) -> float:  # fmt: skip
    """lm_head's share of a forward's matmul FLOPs per token, logits at every position. A frozen base
    under LoRA has the same shape backward (input gradients only), so this is its share of a step too.
    Attention scores count a full row of `context` keys: the masked SDPA a CPU runs does the whole row."""
    head_dim = hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    layer = 2 * (hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * intermediate) + 4 * context * q
    head = 2 * hidden * vocab
    return head / (layers * layer + head)


def report_head_share(name: str, model_config: Any, context: float, loss_share: float) -> None:
    c = model_config
    shapes = [(f"benchmarked {name}", c.hidden_size, c.intermediate_size, c.num_hidden_layers,
               c.num_attention_heads, c.num_key_value_heads, c.vocab_size, context), *QWEN_SHAPES]  # fmt: skip
    for name, *shape in shapes:
        share = head_share(*shape)
        print(f"lm_head  {name:<20} vocab {shape[5]:>7,}, context {shape[6]:>6,.0f}: {share:5.1%} of the matmul "
              f"FLOPs; projecting only the {loss_share:.0%} reply tokens saves at most "
              f"{share * (1 - loss_share):5.1%} of a step")  # fmt: skip


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


def smollm2_rss(workspace: Workspace, root: Path, steps: int) -> None:
    """Peak RSS of SFT with the SmolLM2 preset, after converting the GGUF in a child of its own."""
    convert = [sys.executable, "-c", "from wechat_avatar.models.smollm2 import ensure_smollm2; ensure_smollm2()"]
    wall, peak = quiet_child(convert, root / "convert.log")
    print(f"smollm2  convert/cache check  {wall:6.1f} s, peak RSS {peak / 2**20:,.0f} MiB  (once per machine)")
    ws = root / "ws-smollm2"  # its own copy: the run writes adapters/sft
    if not ws.exists():
        shutil.copytree(workspace.dataset, Workspace(ws).dataset)
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
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all four sides; best of N per side")
    parser.add_argument("--preset", default="tiny-cpu", help="the preset to measure (a GPU one on a GPU)")
    parser.add_argument("--attn", help="model.attn_implementation, e.g. flash_attention_2 (padding-free packing)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    args = parser.parse_args()

    import torch
    import transformers.trainer
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging

    from wechat_avatar.models.load import TINY
    from wechat_avatar.train.pretrain import build_tiny, is_fresh

    if args.threads:
        torch.set_num_threads(args.threads)
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
        cfg = bench_config(args.preset, args.steps, args.pretrain_steps, args.attn)
        t, s = cfg.model.tiny, cfg.sft
        if cfg.model.base == TINY:
            started = time.perf_counter()
            reused = is_fresh(workspace, t)  # a kept workspace keeps its base
            if not reused:
                build_tiny(workspace, t)
            print(f"setup    build_tiny {time.perf_counter() - started:6.1f} s  (hidden {t.hidden_size}, {t.layers} "
                  f"layers, {t.pretrain_steps} pre-training steps{'; reused' if reused else ''})")  # fmt: skip
        device = "cuda" if torch.cuda.is_available() else f"cpu, torch threads {torch.get_num_threads()}"
        attention = cfg.model.attn_implementation or "default"
        print(f"config   {args.preset} ({cfg.model.base}; {device}; attention {attention}): "
              f"batch {s.batch_size} x grad_accum {s.grad_accum}, max_length {s.max_length}, "
              f"LoRA r{s.lora_r} on {','.join(s.lora_targets)}, {s.max_steps} packed steps")  # fmt: skip
        # the padded sides see as many samples as the packed one: a packed row holds several; the packed
        # row count is known before any run (pack() is deterministic), so rounds can interleave the sides
        probe = run_recipe(workspace, cfg, clock) if args.repeat == 1 else None
        per_row = probe["samples"] / probe["rows"] if probe else samples_per_row(workspace, cfg)
        padded_cfg = cfg.model_copy(deep=True)
        padded_steps = round(s.max_steps * per_row)
        padded_cfg.sft = cfg.sft.model_copy(update={"max_steps": padded_steps, "packing": False,
                                                    "save_steps": padded_steps + 1})  # fmt: skip
        sides = {
            "(a) packed ": lambda: run_recipe(workspace, cfg, clock),
            "(b) grouped": lambda: run_recipe(workspace, padded_cfg, clock),
            "(c) Trainer": lambda: run_trainer(workspace, padded_cfg, clock, root / "grouped", "group_by_length"),
            "(d) seed's ": lambda: run_trainer(workspace, padded_cfg, clock, root / "random", "random"),
        }
        best: dict[str, dict[str, Any]] = {}
        for round_ in range(args.repeat):
            # (a) first in each round: whatever warms up in the process (allocator, kernels) favours the others
            for name, side in sides.items():
                r = probe if probe and name.startswith("(a)") else side()
                print(f"round {round_ + 1}  {name}  {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU")
                if name not in best:
                    best[name] = r
                else:  # best of N per side, wall and CPU separately: other work on the cores only slows
                    best[name] = {**best[name], "wall": min(best[name]["wall"], r["wall"]),
                                  "cpu": min(best[name]["cpu"], r["cpu"])}  # fmt: skip
        for name, r in best.items():
            report(name, r)
        packed, grouped, careful, seed = best.values()
        print(f"ours     loss on reply tokens only: {packed['loss_share']:.0%} of the training set's tokens "
              "(the vocabulary projection runs only there)")  # fmt: skip
        print(f"config   {per_row:.2f} samples per packed row: (a) {int(packed['steps'])} steps, the others "
              f"{int(grouped['steps'])} steps each (the same number of samples); best of {args.repeat}")  # fmt: skip
        for label, x, y in (("a/b  packing over length grouping (both reply-only logits)", packed, grouped),
                            ("b/c  reply-only logits over full logits (both length-grouped)", grouped, careful),
                            ("c/d  length grouping over random order (both full logits)", careful, seed),
                            ("a/c  ours over a careful user's padded Trainer", packed, careful),
                            ("a/d  ours over the seed's setup", packed, seed)):  # fmt: skip
            wall = (x["real"] / x["wall"]) / (y["real"] / y["wall"])
            cpu = (x["real"] / x["cpu"]) / (y["real"] / y["cpu"])
            print(f"ratio    {label:<64} {wall:5.2f} tokens/s wall, {cpu:5.2f} per CPU second")
        context = grouped["padded"] / grouped["forwards"] / s.batch_size  # the padded rows' mean width
        report_head_share(args.preset, packed["config"], context, packed["loss_share"])
        if not args.skip_smollm2:
            smollm2_rss(workspace, base, args.smollm2_steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
