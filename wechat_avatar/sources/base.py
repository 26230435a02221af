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
from wechat_avatar.errors import SourceFormatError, UsageError


@dataclass(frozen=True)
class Hints:
    """What the user or the workspace tells the readers that an export may not say itself."""

    self_wxid: str | None = None  # --self: whose history this is
    timezone: str = "Asia/Shanghai"  # --timezone: how an export's local-time strings are read
    account: Callable[[], str | None] = lambda: None  # the workspace's account, if it has one yet
    names: Callable[[], Mapping[str, str]] = dict  # contact or group name -> wxid, as the workspace knows them


class BadRecord(ValueError):
    """One record inside good input that cannot be read; counted and skipped under `reason`.
    `value` is what was wrong (the time as written …), for the error when no record can be read."""

    def __init__(self, reason: str, value: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


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


Guess = str | None | Callable[[], str | None]  # a wxid, or how to find one when it is needed


def resolve_self(hints: Hints | str | None, *guesses: Guess, message: str, hint: str) -> str:
    """Whose history this is: --self, else the reader's own guesses in order, else the workspace's
    account (where `hints` is a Hints; a bare --self value has no workspace behind it).
    Guesses that cost a pass over the input are callables, tried only when needed."""
    flag, account = (hints.self_wxid, hints.account) if isinstance(hints, Hints) else (hints, None)
    for guess in (flag, *guesses, account):
        wxid = guess() if callable(guess) else guess
        if wxid:
            return wxid
    raise UsageError(message, hint=hint)


class ExportReader:
    """What the readers of one account's export share: the summary's `skipped` and `notes`, the
    source key `<key_prefix>:<your wxid>` and nothing held open to close. A reader sets
    `self_wxid` (see `resolve_self`) before anything reads `source_key`."""

    kind: str = ""
    key_prefix: str = ""  # the kind where empty
    path: Path
    self_wxid: str

    def __init__(self, path: Path) -> None:
        self.path = path
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []

    @property
    def source_key(self) -> str:
        return f"{self.key_prefix or self.kind}:{self.self_wxid}"

    def close(self) -> None:  # each pass opens and closes its own files
        return


class Unreadable(NamedTuple):
    """Why no record of an input could be read: the first failure's reason and value."""

    reason: str
    value: str

    def __str__(self) -> str:
        first = f"{self.reason} {self.value!r}" if self.value else self.reason
        return f"no row could be read (the first: {first})"


def first_unreadable(rows: Iterable[Sequence[Any]], mapper: RowMapper) -> Unreadable | None:
    """None as soon as one row maps (or there are none); else why the first one did not.

    Stops at the first good row, so on good input it costs a row or two."""
    first = None
    for row in rows:
        try:
            mapper(row)
        except BadRecord as bad:
            first = first or Unreadable(bad.reason, bad.value)
            continue
        return None
    return first


def readable_files(
    files: Sequence[Path], why_not: Callable[[Path], str | None], what: str
) -> tuple[list[Path], list[str]]:
    """The files of which a record can be read, and a summary note naming each other one and
    why; none readable is a SourceFormatError naming the first. `what`: "the PyWxDump export in …"."""
    good, notes, first = [], [], ""
    for path in files:
        why = why_not(path)
        if why is None:
            good.append(path)
            continue
        notes.append(f"{path.name} was not read: {why}")
        first = first or f"{path.name}: {why}"
    if not good and first:
        many = f"none of the {len(files)} files of" if len(files) > 1 else "nothing in"
        hint = TIME_HINT if "unreadable time" in first else "export it again: it may be damaged or cut short"
        raise SourceFormatError(f"{many} {what} could be read; {first}", hint=hint)
    return good, notes


TIME_HINT = (
    "times are read as 2023-06-21 23:07:25 in --timezone, also with slashes, without zero padding or "
    "seconds, as ISO 8601, or as epoch seconds or milliseconds"
)


def why_unreadable(rows: Callable[[], Iterable[Sequence[Any]]], mapper: RowMapper) -> str | None:
    """Why no row of one input can be read ("no row could be read (the first: …)", or why it is
    not the format it looked like), or None where a row can be (or it holds none)."""
    try:
        first = first_unreadable(rows(), mapper)
    except SourceFormatError as err:
        return str(err)
    return str(first) if first else None


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
