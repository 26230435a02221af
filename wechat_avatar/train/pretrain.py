"""Recipe: pre-train builtin:tiny-qwen2 on your own messages -> WORKSPACE/models/tiny-qwen2/.

    wechat-avatar train pretrain     (train sft runs it itself when the model is missing or stale)

The model (models/tiny.py) starts random; plain next-token training on the training split's
conversations (the test split stays unseen, so eval stays honest) teaches it to speak, and LoRA
SFT then starts from it like from any other base. The loop is written out: it is 20 lines, and a
Trainer would add nothing but configuration.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wechat_avatar.config import TinyModelConfig
from wechat_avatar.dataset.splits import dataset_hash, read_split
from wechat_avatar.models.load import TINY
from wechat_avatar.models.tiny import BUILD_FILE, random_model, tokenizer_for
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[[int], None]]


def _token_stream(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[int]:
    """Every training conversation as ChatML text, end to end (distinct windows repeat context)."""
    seen: set[str] = set()
    stream: list[int] = []
    for conversation in conversations:
        text = tokenizer.apply_chat_template(conversation, tokenize=False)
        if text not in seen:
            seen.add(text)
            stream += tokenizer(text, add_special_tokens=False)["input_ids"]
    return stream


def build_tiny(workspace: Workspace, cfg: TinyModelConfig, progress: Progress | None = None) -> Path:
    """Build and pre-train the tiny model into WORKSPACE/models/tiny-qwen2; returns the folder."""
    import torch

    conversations = read_split(workspace, "train")
    tokenizer = tokenizer_for(cfg, [m["content"] for c in conversations for m in c])
    model = random_model(cfg, tokenizer)

    stream = torch.tensor(_token_stream(tokenizer, conversations))
    block = cfg.seq_len + 1
    blocks = stream[: len(stream) // block * block].view(-1, block) if len(stream) >= block else stream[None, :]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(cfg.seed)
    advance = progress("pretrain tiny model", cfg.pretrain_steps) if progress else (lambda n: None)
    losses: list[float] = []
    started = time.perf_counter()
    model.train()
    for step in range(cfg.pretrain_steps):
        # cosine learning rate with a short warmup
        warm = max(1, cfg.pretrain_steps // 20)
        scale = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * step / cfg.pretrain_steps))
        for group in optimizer.param_groups:
            group["lr"] = cfg.pretrain_lr * scale
        # sample a batch of blocks; predict each next token
        rows = blocks[torch.randint(len(blocks), (cfg.pretrain_batch_size,), generator=generator)]
        loss = model(input_ids=rows[:, :-1], labels=rows[:, :-1].clone(), use_cache=False).loss
        # step
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(round(loss.item(), 4))
        advance(1)
    model.eval()

    target = workspace.tiny_model
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    weights = (partial / "model.safetensors").read_bytes()
    record = {
        "base": TINY, "config": cfg.model_dump(), "dataset": dataset_hash(workspace),
        "vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
        "pretrain_tokens": int(stream.numel()), "loss": losses, "seconds": round(time.perf_counter() - started, 1),
        "fingerprint": hashlib.sha256(weights).hexdigest()[:16],
    }  # fmt: skip
    (partial / BUILD_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # an interrupted build never leaves a half model behind
    return target


def is_fresh(workspace: Workspace, cfg: TinyModelConfig) -> bool:
    """Built from this dataset with these settings."""
    build = workspace.tiny_model / BUILD_FILE
    if not build.is_file():
        return False
    record = json.loads(build.read_text(encoding="utf-8"))
    return record.get("config") == cfg.model_dump() and record.get("dataset") == dataset_hash(workspace)
