"""What keeps a big ingest's memory flat: the bulk load holds no per-row set of source ids (a
repeated one is dropped in SQL at the end, as ON CONFLICT would have), and merge keys are kept
in a compact KeySet."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from wechat_avatar.canonical import Account, Message
from wechat_avatar.render import render
from wechat_avatar.staging import KeySet, message_row
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace


def rows(ids: list[int]) -> list[tuple[Any, ...]]:
    out = []
    for n, i in enumerate(ids):
        msg = Message("t:me", str(i), f"wxid_{i % 3}", "wxid_me", True, 1_687_360_000_000 + n, 1, 0, f"第{n}条")
        out.append(message_row(msg, render(1, 0, msg.content)))
    return out


def load(workspace: Path, batches: list[list[int]], bulk: bool) -> tuple[int, list[tuple[Any, ...]]]:
    with Store.open(Workspace(workspace)) as store, store.transaction():
        store.set_account(Account("wxid_me"))
        if bulk:
            with store.deferred_index():
                added = sum(store.insert_rows(rows(b)) for b in batches)
            added -= store.repeated_ids
        else:
            added = sum(store.insert_rows(rows(b)) for b in batches)
    conn = sqlite3.connect(workspace / "chat.db")
    try:
        return added, conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_bulk_load_with_repeated_ids_stores_what_upserts_store(tmp_path: Path) -> None:
    batches = [[1, 2, 3, 2], [4, 1, 5], [6, 7, 4, 8]]  # repeats inside a batch and across batches
    bulk_added, bulk = load(tmp_path / "bulk", batches, bulk=True)
    plain_added, plain = load(tmp_path / "plain", batches, bulk=False)
    assert bulk == plain and bulk_added == plain_added == 8
    assert [row[0] for row in bulk] == list(range(1, 9))
    assert [row[2] for row in bulk] == [str(i) for i in (1, 2, 3, 4, 5, 6, 7, 8)]
    again, _ = load(tmp_path / "clean", [[1, 2], [3]], bulk=True)
    assert again == 3


def test_keyset_answers_as_a_set_does() -> None:
    rng = random.Random(3)
    keys, ref = KeySet(), set()
    for _ in range(400):
        batch = np.array(sorted({rng.getrandbits(12) - 2048 for _ in range(rng.randrange(0, 40))}), dtype=np.int64)
        hit = keys.found(batch)
        assert set(batch[hit].tolist()) == ref & set(batch.tolist())
        keys.add(batch[~hit])
        ref |= set(batch.tolist())
    assert len(keys) == len(ref) and len(keys.runs) <= 12
