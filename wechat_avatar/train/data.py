"""Training samples: the dataset's `messages` split, tokenized with the model's chat template.

Loss falls only on the avatar's turns. Labels come from character spans rather than from a
`{% generation %}` template marker, because most hub models' templates lack that marker: each
assistant turn's span is where the template's text for messages[:i+1] extends the text for
messages[:i] + generation prompt; tokens inside a span keep their id, all others get -100.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from wechat_avatar.errors import DatasetError

IGNORE = -100  # the label PyTorch's cross-entropy skips


def split_path(workspace: Path, split: str) -> Path:
    return workspace / "dataset" / "messages" / f"{split}.jsonl"


def read_split(workspace: Path, split: Literal["train", "test"]) -> list[list[dict[str, str]]]:
    """The conversations of one split; a missing or empty training split is an error."""
    path = split_path(workspace, split)
    if not path.is_file():
        hint = f"run `wechat-avatar dataset --workspace {workspace}` first (messages format)"
        raise DatasetError(f"no dataset at {path}", hint=hint)
    conversations = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                conversations.append(json.loads(line)["messages"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DatasetError(f"{path}:{number} is not a messages-format sample",
                                   hint="rebuild it with `wechat-avatar dataset`") from None  # fmt: skip
    if not conversations and split == "train":
        raise DatasetError(f"{path} has no samples: there is nothing to learn from",
                           hint="check the dataset report (filters, only_chats, your --self account)")  # fmt: skip
    return conversations


def dataset_hash(workspace: Path) -> str:
    """Which dataset an adapter was trained on (from the builder's manifest)."""
    manifest = workspace / "dataset" / "manifest.json"
    if not manifest.is_file():
        return ""
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation as template text, and the character span of each assistant turn."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        turn = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (turn.startswith(prompt) and text.startswith(turn)):
            raise DatasetError("the model's chat template does not render conversations prefix by prefix",
                               hint="set a ChatML template on the tokenizer, or use a chat model")  # fmt: skip
        spans.append((len(prompt), len(turn)))
    return text, spans


def encode_conversation(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None = None, loss_on: str = "all"
) -> tuple[list[int], list[int]]:
    """input_ids and labels: -100 everywhere except the assistant turns (or only the last one).

    A sequence longer than max_length loses its start, so the reply being learnt survives.
    """
    text, spans = assistant_spans(tokenizer, messages)
    if loss_on == "last":
        spans = spans[-1:]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    labels = [IGNORE] * len(ids)
    span_index = 0
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and start >= spans[span_index][0] and end <= spans[span_index][1]:
            labels[position] = ids[position]
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels
