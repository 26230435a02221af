"""What every source reader offers the ingester, and the helpers they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from wechat_avatar.canonical import Account, Contact, Member, Message


class BadRecord(ValueError):
    """One record inside good input that cannot be read; counted and skipped under `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Source(Protocol):
    """An opened export. `messages()` streams; bad records land in `skipped`, never stop the run."""

    kind: str  # e.g. "android-db", "android-csv"
    path: Path
    skipped: Counter[str]  # bad records dropped, by reason
    repaired: Counter[str]  # records kept after a repair (e.g. invalid UTF-8), by what was done

    @property
    def source_key(self) -> str: ...  # namespace of Message.source_id, e.g. android:wxid_me

    def account(self) -> Account: ...

    def contacts(self) -> Iterable[Contact]: ...

    def members(self) -> Iterable[Member]: ...

    def count(self) -> int: ...  # messages to read, for the progress bar

    def messages(self) -> Iterator[Message]: ...

    def close(self) -> None: ...


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
