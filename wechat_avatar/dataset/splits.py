"""Reading what the dataset stage wrote: its splits and its manifest (train, eval and chat do)."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from wechat_avatar.errors import DatasetError
from wechat_avatar.workspace import Workspace

Conversation = list[dict[str, str]]
DEFAULT_SELF_NAME = "我"


def read_split(workspace: Workspace, split: Literal["train", "test"]) -> list[Conversation]:
    """The conversations of one split (messages format); a missing or empty training split is an error."""
    path = workspace.split(split)
    if not path.is_file() and split == "test" and workspace.manifest.is_file():
        return []  # a dataset without held-out sessions writes no test file
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


def dataset_hash(workspace: Workspace) -> str:
    """Which dataset a model or adapter was trained on (from the builder's manifest); "" before any."""
    if not workspace.manifest.is_file():
        return ""
    return hashlib.sha256(workspace.manifest.read_bytes()).hexdigest()[:16]


def self_name(workspace: Workspace) -> str:
    """The avatar's name as the dataset knew it (the system prompt uses it)."""
    if workspace.manifest.is_file():
        return json.loads(workspace.manifest.read_text(encoding="utf-8")).get("self_name") or DEFAULT_SELF_NAME
    return DEFAULT_SELF_NAME
