"""`wechat-avatar memory build`: chat.db -> WORKSPACE/memory/index.db, incrementally.

The first build cuts every chat; a later one (after a new ingest) re-cuts only the chats whose
messages changed, found by a signature (count, largest id, sum of ids) of each chat's rows. A
change of the settings the exchanges are cut with (session gap, blocked words, chat filters)
rebuilds the whole index. PII gets the dataset's own pseudonyms (private/pii_map.json), and
values the dataset never saw are numbered after them and kept in private/memory_pii_map.json.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.names import Names
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.errors import UsageError
from wechat_avatar.memory.exchanges import Cutter
from wechat_avatar.memory.index import MemoryIndex
from wechat_avatar.store import DatasetRow, Store
from wechat_avatar.workspace import Workspace

INDEX_VERSION = "1"


@dataclass
class MemoryReport:
    path: Path
    chats_cut: int  # chats (re-)indexed by this build
    chats_unchanged: int
    chats_left_out: int  # official accounts, file helper, excluded chats: as in the dataset
    messages_skipped: int  # messages the dataset would not read either
    exchanges: int  # in the index after this build
    rebuilt: bool  # the settings changed (or first build): every chat was cut


def build_memory(
    store: Store, workspace: Workspace, cfg: AvatarConfig, advance: Callable[[int], None] | None = None
) -> MemoryReport:
    if store.account() is None or store.count("messages") == 0:
        hint = "run `wechat-avatar ingest EXPORT --workspace DIR` first"
        raise UsageError(f"{store.path} has no messages: no history to remember", hint=hint)
    index = MemoryIndex(workspace.memory_index)
    try:
        return _build(store, workspace, cfg, index, advance)
    finally:
        index.close()


def _build(
    store: Store, workspace: Workspace, cfg: AvatarConfig, index: MemoryIndex, advance: Callable[[int], None] | None
) -> MemoryReport:
    settings = _settings(cfg, workspace)
    rebuilt = index.settings() != settings
    if rebuilt:
        index.reset(settings)
    known = index.signatures()
    pseudo = Pseudonymiser(cfg.dataset.pii_cues)
    pseudo.preload({**_read_map(workspace.pii_map), **_read_map(workspace.memory_pii_map)})
    cutter = Cutter(Names(store), cfg.dataset, pseudo)
    cut = unchanged = left_out = skipped = 0
    seen: set[str] = set()
    for chat_id, group in groupby(store.dataset_rows(), key=lambda r: r.chat_id):
        rows = list(group)
        seen.add(chat_id)
        signature = _signature(rows)
        if known.get(chat_id) == signature:
            unchanged += 1
        else:
            memory = cutter.chat(chat_id, rows)
            index.replace_chat(chat_id, signature, memory)
            cut += 1
            left_out += memory is None
            skipped += memory.skipped if memory else 0
        if advance:
            advance(len(rows))
    index.forget_chats(sorted(set(known) - seen))
    _write_map(workspace, pseudo.originals)
    return MemoryReport(index.path, cut, unchanged, left_out, skipped, index.count(), rebuilt)


def _settings(cfg: AvatarConfig, workspace: Workspace) -> dict[str, str]:
    """What the exchanges were cut with; the dataset's pseudonyms too (a rebuilt dataset may number PII anew)."""
    d = cfg.dataset
    cut_with = d.model_dump(include={"session_gap_hours", "include_groups", "exclude_chats", "only_chats",
                                     "blocked_words", "pii_cues"})  # fmt: skip
    digest = hashlib.sha256(json.dumps(cut_with, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    names = workspace.pii_map.read_bytes() if workspace.pii_map.is_file() else b""
    return {"version": INDEX_VERSION, "cut_with": digest, "pii_map": hashlib.sha256(names).hexdigest()}


def _signature(rows: list[DatasetRow]) -> str:
    ids = [row.id for row in rows]
    return f"{len(ids)}:{max(ids)}:{sum(ids)}"


def _read_map(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}  # an unreadable map: values are numbered afresh, never lost or leaked


def _write_map(workspace: Workspace, originals: dict[str, str]) -> None:
    """The pseudonyms only memory knows, readable by the user alone (as the dataset writes its own)."""
    known = _read_map(workspace.pii_map)
    mine = {k: v for k, v in originals.items() if k not in known}
    workspace.private.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(workspace.memory_pii_map, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(mine, f, ensure_ascii=False, indent=1)
