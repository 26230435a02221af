"""What every source reader offers the ingester, and the helpers they share."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import blackboxprotobuf

from wechat_avatar.canonical import Account, Contact, Member, Message
from wechat_avatar.errors import SourceFormatError


@dataclass(frozen=True)
class Hints:
    """What the user or the workspace tells the readers that an export may not say itself."""

    self_wxid: str | None = None  # --self: whose history this is
    timezone: str = "Asia/Shanghai"  # --timezone: how an export's local-time strings are read
    account: Callable[[], str | None] = lambda: None  # the workspace's account, if it has one yet
    names: Callable[[], Mapping[str, str]] = dict  # contact or group name -> wxid, as the workspace knows them


class BadRecord(ValueError):
    """One record inside good input that cannot be read; counted and skipped under `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A pure, picklable function from one raw message row to a Message (it runs in worker
# processes); raises BadRecord for a row that cannot be placed.
RowMapper = Callable[[Sequence[Any]], Message]


class ChunkRows(NamedTuple):
    """What reading a chunk gives: its raw rows, and what its reader has to say about them."""

    rows: list[Sequence[Any]]
    skipped: Counter[str]  # rows the reader itself could not split into fields, by reason
    notes: Counter[str]  # a note for the summary ("{} lines were … read as GBK") -> the number it fills in


class Chunk(Protocol):
    """A share of a source's rows that a worker process reads itself: picklable (paths and
    numbers, no open handles), read once."""

    def read(self) -> ChunkRows: ...


class Source(Protocol):
    """An opened export. `rows()` streams raw message rows; `row_mapper()` turns each into a
    Message. Split so the mapping can run in parallel with reading and writing.

    A source whose input splits into independent shares (files, id ranges) may also offer
    `chunks() -> list[Chunk]`, the same rows in the same order; the ingest then has worker
    processes read them, and never calls `rows()`.
    A chunk may also offer `stage(cfg: RenderConfig, scratch: Path) -> staging.Prepared | None`:
    itself mapped, rendered and staged in one go, exactly as the mapper and renderer would, its
    image perhaps a file in `scratch` (None where it cannot; then `read()` is used).
    """

    kind: str  # e.g. "android-db", "android-csv"
    path: Path
    skipped: Counter[str]  # rows the reader itself dropped (e.g. broken CSV lines), by reason
    notes: list[str]  # one line each, for the ingest summary (e.g. "no MicroMsg.db: wxids as names")

    @property
    def source_key(self) -> str: ...  # namespace of Message.source_id, e.g. android:wxid_me

    def account(self) -> Account: ...

    def contacts(self) -> Iterable[Contact]: ...

    def members(self) -> Iterable[Member]: ...

    def count(self) -> int: ...  # messages to read, for the progress bar (may be an estimate)

    def rows(self) -> Iterator[Sequence[Any]]: ...

    def row_mapper(self) -> RowMapper: ...

    def close(self) -> None: ...


def map_rows(rows: Iterable[Sequence[Any]], mapper: RowMapper) -> tuple[list[Message], Counter[str], Counter[str]]:
    """Apply a mapper to rows: (messages, skipped by reason, repaired by what was done)."""
    messages: list[Message] = []
    skipped: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    for row in rows:
        try:
            msg = mapper(row)
        except BadRecord as bad:
            skipped[bad.reason] += 1
            continue
        if "\ufffd" in msg.content and any(isinstance(v, bytes) and not decode_text(v)[1] for v in row):
            repaired["invalid UTF-8 replaced"] += 1
        messages.append(msg)
    return messages, skipped, repaired


def query(path: Path, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
    """Rows of one query on a decrypted WeChat database, opened read-only (the PC readers).

    A damaged or truncated file is a SourceFormatError, even half-way through.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        yield from conn.execute(sql, args)
    except sqlite3.Error as err:
        raise SourceFormatError(f"{path.name} is damaged or truncated: {err}") from err
    finally:
        conn.close()


def query_value(path: Path, sql: str, *args: Any) -> Any:
    rows = list(query(path, sql, *args))
    return rows[0][0] if rows else None


def decode_text(value: bytes | str | None) -> tuple[str, bool]:
    """Bytes from a chat DB as text; returns (text, was_clean).

    Some real rows are not valid UTF-8 (cut multi-byte sequences): keep the message with
    replacement characters rather than drop it, and let the caller count it.
    """
    if value is None:
        return "", True
    if isinstance(value, str):
        return value, True
    try:
        return value.decode("utf-8"), True
    except UnicodeDecodeError:
        return value.decode("utf-8", errors="replace"), False


# roomdata / RoomData / ext_buffer: repeated field 1 = member {1: wxid, 2: in-group name}.
# The same protobuf on Android, PC 3.x and 4.x; a few rows per group, so bbpb's speed is fine.
_ROOMDATA = {
    "1": {"type": "message", "seen_repeated": True,
          "message_typedef": {"1": {"type": "string"}, "2": {"type": "string"}}},
}  # fmt: skip


def roomdata_names(blob: bytes | str | None) -> dict[str, str]:
    if isinstance(blob, str):  # CSV exports carry BLOBs as hex
        try:
            blob = bytes.fromhex(blob)
        except ValueError:
            return {}
    if not blob:
        return {}
    try:
        decoded, _ = blackboxprotobuf.decode_message(blob, _ROOMDATA)
    except Exception:  # a damaged blob only costs us the in-group names
        return {}
    items = decoded.get("1", [])
    items = items if isinstance(items, list) else [items]
    return {m["1"]: m.get("2", "") for m in items if isinstance(m, dict) and m.get("1") and m.get("2")}
