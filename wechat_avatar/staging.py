"""A batch of messages on its way into the store: rows, merge keys, and the staged image.

Worker processes build a batch as a small SQLite database holding one table, `rows`
(`STAGE_TABLE`, rowid = input order, 1..n), as an in-memory image or a file; the store loads
it and moves it into chat.db with set-based SQL (see store.py). Everything that defines such a row lives
here, so that the row-at-a-time path (`message_row`, `staged`) and a reader that stages
set-based (sources/pywxdump_stage.py) build the same thing.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from wechat_avatar.canonical import Message
from wechat_avatar.render import Rendered

if TYPE_CHECKING:
    import pyarrow as pa

# Message's fields minus its sub_type, then Rendered's (whose sub_type is the corrected one),
# then the merge key: rows are built by slicing the two NamedTuples, which matters at a
# million messages.
MESSAGE_COLUMNS = (
    "source, source_id, chat_id, sender, is_self, ts_ms, base_type, content, source_type, server_id, "
    "text, category, render_status, sub_type, quote, render_note, merge_key"
)
SOURCE_ID, KEY = 1, 16  # positions in a row
# A batch: one table, rowid = input order, no index (built and read once).
STAGE_TABLE = f"CREATE TABLE rows ({MESSAGE_COLUMNS})"
_STAGE_ROW = f"INSERT INTO rows VALUES ({', '.join('?' * 17)})"


@dataclass
class Prepared:
    """One batch, mapped, rendered and staged (`staged`), plus what the ingest report counts."""

    image: bytes | Path  # or a file holding it, which the store reads and removes
    ids: list[str]  # the rows' source ids, in order
    keys: list[int]  # their merge keys
    chats: list[str]  # the chats they are in, each once
    skipped: Counter[str]
    repaired: Counter[str]
    categories: Counter[str]
    statuses: Counter[str]
    notes: Counter[str] = field(default_factory=Counter)  # from a chunk's reader: note template -> count
    already: int = 0  # rows read but not staged: older than what chat.db holds of their chat (incremental)


class Stored(NamedTuple):
    """What chat.db already holds of one source, for an incremental re-ingest (Store.stored,
    ingest.resume)."""

    newest: dict[str, int]  # chat id -> ts_ms of the newest message of this source in it
    last_id: str  # the source id of the last message stored (readers with ordered ids resume after it)
    last_chat: str  # that message's chat and time: a reader checks its own row of that id is the same
    last_ts_ms: int


class KeySet:
    """A set of 64-bit keys in 8 bytes each (a Python set of ints takes about 60): the merge keys
    an ingest has seen, 10M of them in 80 MB. Sorted numpy runs, merged pairwise when one
    grows as big as the one before it (as a binary counter carries), so adding n keys costs
    O(n log n) and a lookup searches O(log n) runs. Hand-written: no library we use offers a
    compact integer set with batched lookups."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    def found(self, keys: np.ndarray) -> np.ndarray:
        """For each key, whether the set holds it."""
        hit = np.zeros(len(keys), dtype=bool)
        for run in self.runs:
            at = np.searchsorted(run, keys).clip(max=len(run) - 1)
            hit |= run[at] == keys
        return hit

    def add(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        run = np.unique(keys)
        while self.runs and len(self.runs[-1]) <= len(run):
            run = np.union1d(self.runs.pop(), run)
        self.runs.append(run)


def merge_key(msg: Message) -> int:
    """What identifies a message when no server id does (see `key_of`)."""
    return key_of(msg[2], msg[3], msg[5], msg[6], msg[8])  # by position: it runs 1M times


def key_of(chat: str, sender: str, ts_ms: int, base_type: int, content: str) -> int:
    """Chat, sender, the whole second, and for text the words typed (whitespace folded). Other
    kinds match on the rest alone, since exports keep only a rendering of them. A signed 64-bit
    hash, so it fits an INTEGER column.

    `store.SourceWriter` tells apart repeats inside one source (two "好" in the same second).
    """
    if base_type == 1:
        return hash64(f"{chat}\x1f{sender}\x1f{ts_ms // 1000}\x1fTrue\x1f{' '.join(content.split())}")
    return hash64(f"{chat}\x1f{sender}\x1f{ts_ms // 1000}\x1fFalse\x1f")


def hash64(data: str) -> int:
    return _INT64.unpack(blake2b(data.encode("utf-8", "surrogatepass"), digest_size=8).digest())[0]


_INT64 = struct.Struct(">q")  # big-endian signed: what int.from_bytes(…, "big", signed=True) gives


def _scratch() -> str | None:
    """Where staged images wait for the store: memory where Linux offers enough of it (a
    container's /dev/shm may hold only 64 MiB), else the temp folder."""
    try:
        shm = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) and shm.f_bavail * shm.f_frsize >= 1 << 30 else None


SCRATCH = _scratch()


def message_row(msg: Message, rendered: Rendered) -> tuple[Any, ...]:
    """The INSERT parameters for one message, in MESSAGE_COLUMNS order (slices: it runs 1M times)."""
    return msg[:7] + msg[8:] + rendered + (merge_key(msg),)


def staged(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """Rows built by `message_row`, as the image of an in-memory SQLite database holding one
    table `rows` in input order: what a worker process hands to `Store.insert_staged`."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(STAGE_TABLE)
        conn.executemany(_STAGE_ROW, rows)
        conn.commit()
        return conn.serialize()
    finally:
        conn.close()


def staged_arrow(table: pa.Table, folder: Path) -> Path:
    """An Arrow table with MESSAGE_COLUMNS, in input order, staged as `staged` stages rows, in
    a new file in `folder` (the store reads and removes it).

    ADBC's SQLite driver binds straight from Arrow's buffers, with no Python object per
    value: 1.0 µs a row against 2.7 µs through sqlite3's executemany. It writes a file (it
    has no in-memory image).
    """
    import adbc_driver_manager as adbc  # only PyWxDump's column-wise path comes here
    import adbc_driver_sqlite

    fd, name = tempfile.mkstemp(suffix=".db", dir=folder)
    os.close(fd)
    try:
        with adbc_driver_sqlite.connect(name) as db, adbc.AdbcConnection(db) as conn:
            conn.set_autocommit(False)
            with adbc.AdbcStatement(conn) as stmt:
                for sql in ("PRAGMA journal_mode = OFF", STAGE_TABLE):
                    stmt.set_sql_query(sql)
                    stmt.execute_update()
                stmt.set_options(**{adbc.INGEST_OPTION_TARGET_TABLE: "rows",
                                    adbc.INGEST_OPTION_MODE: adbc.INGEST_OPTION_MODE_APPEND})  # fmt: skip
                stmt.bind_stream(table.select(MESSAGE_COLUMNS.split(", ")))
                stmt.execute_update()
            conn.commit()
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
