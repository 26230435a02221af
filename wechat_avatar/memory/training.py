"""Training with memory: the train split's samples carry the memories recalled for them.

With `memory.enabled` and `memory.in_training` (both on), `wechat-avatar dataset` brings the
memory index up to date after the build and rewrites each training sample's system prompt as
reply time writes it: the system prompt, then the memory block of what recall finds for the
sample's last user turn, strictly before the sample's own session (memory/samples.py). The model
learns from samples shaped like the prompts it will be asked — retrieval-augmented fine-tuning.
A persona profile (memory/profile.py), where there is one, goes into every training sample too.

Only the train split changes (eval gives held-out samples their memories itself, when memory is
on, so the test split stays the plain one, and a training sample never recalls a held-out session's
exchange: those words stay out of training); only formats with a system prompt can carry the
block (messages, sharegpt; firefly has none and keeps its samples). With either option off this
never runs: the dataset is byte for byte the one without memory. manifest.json records the new
files' hashes and how many samples got memories ("memory").
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wechat_avatar.config import AvatarConfig
from wechat_avatar.errors import DatasetError
from wechat_avatar.memory.profile import persona_block
from wechat_avatar.memory.recall import Recall
from wechat_avatar.memory.samples import SampleRecall, split_sessions
from wechat_avatar.workspace import MANIFEST_FILE, Workspace, split_name

CARRIERS = ("messages", "sharegpt")  # formats with a system prompt to put memories in


def wanted(cfg: AvatarConfig) -> bool:
    return cfg.memory.enabled and cfg.memory.in_training


def remember_train(
    workspace: Workspace, cfg: AvatarConfig, advance: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Rewrite the train split's samples with their memories (the index must be current); the counts."""
    keys = split_sessions(workspace, "train")
    paths = {fmt: workspace.dataset / split_name("train", fmt) for fmt in CARRIERS}
    paths = {fmt: p for fmt, p in paths.items() if p.is_file()}
    lines = {fmt: p.read_text(encoding="utf-8").splitlines() for fmt, p in paths.items()}
    for fmt, fmt_lines in lines.items():
        if len(fmt_lines) != len(keys):
            raise DatasetError(f"{paths[fmt]} has {len(fmt_lines)} samples but meta.jsonl {len(keys)}",
                               hint=f"rebuild it: `wechat-avatar dataset --workspace {workspace}`")  # fmt: skip
    opened = Recall.open(workspace, cfg)
    # a held-out session's words never reach training, not even as a memory of a later sample
    held_out = frozenset(opened.index.session_exchanges(set(split_sessions(workspace, "test"))))
    recall = SampleRecall(opened, exclude=held_out, persona=persona_block(workspace, cfg))
    try:
        for i, key in enumerate(keys):
            samples = {fmt: json.loads(fmt_lines[i]) for fmt, fmt_lines in lines.items()}
            memories = recall(key, _context(samples))
            if memories or recall.persona:
                for fmt, sample in samples.items():
                    lines[fmt][i] = json.dumps(_with(fmt, sample, recall, memories), ensure_ascii=False)
            if advance:
                advance(1)
    finally:
        recall.recall.close()
    hashes = {}
    for fmt, path in paths.items():
        data = ("\n".join(lines[fmt]) + "\n").encode() if lines[fmt] else b""
        _replace(path, data)
        hashes[split_name("train", fmt)] = hashlib.sha256(data).hexdigest()
    counts = recall.counts()
    _record(workspace.dataset / MANIFEST_FILE, hashes, counts)
    return counts


def _context(samples: dict[str, Any]) -> list[dict[str, str]]:
    """The sample's messages, from whichever carrier format was written."""
    if "messages" in samples:
        return samples["messages"]["messages"]
    roles = {"human": "user", "gpt": "assistant"}
    share = samples["sharegpt"]
    turns = [{"role": roles[t["from"]], "content": t["value"]} for t in share["conversations"]]
    return [{"role": "system", "content": share["system"]}, *turns]


def _with(fmt: str, sample: dict[str, Any], recall: SampleRecall, memories: list[Any]) -> dict[str, Any]:
    if fmt == "messages":
        messages = sample["messages"]
        first = {**messages[0], "content": recall.system(messages[0]["content"], memories)}
        return {**sample, "messages": [first, *messages[1:]]}
    return {**sample, "system": recall.system(sample["system"], memories)}


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _record(manifest: Path, hashes: dict[str, str], counts: dict[str, int]) -> None:
    made = json.loads(manifest.read_text(encoding="utf-8"))
    made["files"].update(hashes)
    made["memory"] = {"in_training": True, **counts}
    _replace(manifest, json.dumps(made, ensure_ascii=False, indent=2).encode())
