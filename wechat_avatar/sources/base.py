"""What every source reader offers the ingester, and the helpers they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from wechat_avatar.canonical import Account, Contact, Member, Message


class BadRecord(ValueError):
    """One record inside good input that cannot be read; counted and skipped under `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A pure, picklable function from one raw message row to a Message (it runs in worker
# processes); raises BadRecord for a row that cannot be placed.
RowMapper = Callable[[Sequence[Any]], Message]


class Source(Protocol):
    """An opened export. `rows()` streams raw message rows; `row_mapper()` turns each into a
    Message. Split so the mapping can run in parallel with reading and writing."""

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
