"""Why a WeChat database cannot be read whole: still encrypted, cut short, or damaged.

Shared by the scan (a file that does not open) and the PC readers (a shard that fails when
read), so every unread file is named in the ingest summary the same way:

    damage(Path("MSG1.db"))  ->  "truncated: 151,552 of 200,704 bytes (75 %)"
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources.base import query

SQLITE_MAGIC = b"SQLite format 3\x00"  # as in classify.py, which the PC readers' workers need not import
ENCRYPTED = "still encrypted"
COPY_AGAIN = "copy it again from the PC and ingest again (what is stored stays)"
LOST_NAMES = "contacts and groups keep their wxids as names (no remarks, nicknames, group names or members)"
DECRYPT = "decrypt it and ingest again (what is stored stays)"


def damage(path: Path, error: str = "") -> str | None:
    """What is wrong with a database, as a phrase ("still encrypted", "truncated: …"), or None
    if it opens and its schema reads (then any error is further in: `error` says which)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
        size = path.stat().st_size
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if head[:16] != SQLITE_MAGIC:
        return ENCRYPTED
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count holds only while "version-valid-for" matches the change counter
    if head[92:96] == head[24:28] and pages and size < pages * page_size:
        whole = pages * page_size
        return f"truncated: {size:,} of {whole:,} bytes ({size * 100 // whole} %)"
    if page_size and size % page_size:
        return f"truncated: {size:,} bytes is not a whole number of {page_size}-byte pages"
    if error:
        return f"damaged or truncated ({error})"
    schema_error = _schema_error(path)
    return f"damaged or truncated ({schema_error})" if schema_error else None


def advice(why: str) -> str:
    return DECRYPT if why == ENCRYPTED else COPY_AGAIN


def unread_note(path: Path, why: str, lost: str = "its messages are missing") -> str:
    """The summary line for a file the ingest could not read."""
    return f"{path.name} not read, {why}: {lost}; {advice(why)}"


def names_rows(path: Path | None, notes: list[str], sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
    """Rows of a contacts database (MicroMsg.db, contact.db), if there is one; one that breaks mid-read
    costs names, never the messages: the rows before the damage, and a note (once) saying what was lost."""
    if path is None:
        return
    try:
        yield from query(path, sql, *args)
    except SourceFormatError as err:
        note = (f"{path.name} damaged or truncated ({cause(err)}): contacts and groups it could not "
                f"list keep their wxids as names; {COPY_AGAIN}")  # fmt: skip
        if note not in notes:
            notes.append(note)


def cause(err: Exception) -> str:
    """The SQLite message under a reader's SourceFormatError ("database disk image is malformed")."""
    return str(err.__cause__ or err)


def _schema_error(path: Path) -> str | None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as err:
        return str(err)
    finally:
        conn.close()
    return None


def resume(first: int, end: int, seek: Callable[[int], int | None]) -> int | None:
    """The first rowid from `first` on that a read reaches past damaged pages, None if none up to
    `end` does. `seek(x)` is the first rowid >= x, raising where the way to it is damaged: ever
    wider steps until one lands past the damage, then halving back to where it ends."""

    def reads(x: int) -> bool:
        try:
            seek(x)
        except (sqlite3.Error, SourceFormatError):
            return False
        return True

    bad, step = first, 1
    while first + step < end and not reads(first + step):
        bad, step = first + step, step * 2
    past = min(first + step, end)
    if not reads(past):
        return None
    while past - bad > 1:  # bad: a seek that meets the damage; past: one that does not
        middle = (bad + past) // 2
        bad, past = (bad, middle) if reads(middle) else (middle, past)
    return seek(past)
