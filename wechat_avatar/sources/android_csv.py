"""The seed's route: EnMicroMsg tables exported to CSV by a DB browser.

A folder holds `message`, `rcontact`, `userinfo` (and optionally `chatroom`) as CSV, UTF-8
with or without BOM. Tables are recognised by their header row, not their file names; the
rows go through the same mappers as the database reader, under the same source key, so a
CSV export and the database it came from never add a message twice.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from wechat_avatar.canonical import Account, Contact, Member
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources.android import (
    CHATROOM_COLUMNS,
    MESSAGE_COLUMNS,
    RCONTACT_COLUMNS,
    USERINFO_COLUMNS,
    account_from_userinfo,
    contact_from_rcontact,
    members_from_chatroom,
    message_from_row,
    strangers_from_chatroom,
)
from wechat_avatar.sources.base import RowMapper

TABLES: dict[str, tuple[str, ...]] = {
    "message": MESSAGE_COLUMNS,
    "rcontact": RCONTACT_COLUMNS,
    "userinfo": (*USERINFO_COLUMNS, "type"),
    "chatroom": CHATROOM_COLUMNS,
}
REQUIRED = ("message", "rcontact", "userinfo")

csv.field_size_limit(sys.maxsize)  # a single message can be megabytes of XML


def read_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), [])
    except UnicodeDecodeError as err:
        raise SourceFormatError(f"{path.name} is not UTF-8", hint="re-export the table as UTF-8 CSV") from err


def table_of(header: list[str]) -> str | None:
    """Which EnMicroMsg table a header belongs to (the most specific match wins)."""
    columns = set(header)
    for table in ("message", "chatroom", "rcontact", "userinfo"):
        if set(TABLES[table]) <= columns:
            return table
    return None


def find_tables(folder: Path) -> dict[str, Path]:
    """Map table name -> CSV file; a file named like a table but lacking columns is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.csv")):
        header = read_header(path)
        table = table_of(header)
        if table is None and path.stem.lower() in TABLES:
            missing = [c for c in TABLES[path.stem.lower()] if c not in header]
            raise SourceFormatError(
                f"{path.name} is missing columns: {', '.join(missing)}",
                hint="export the whole table with its header row",
            )
        if table and table not in found:
            found[table] = path
    return found


def looks_like_export(folder: Path) -> bool:
    return "message" in find_tables(folder)


class AndroidCsv:
    kind = "android-csv"

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.tables = find_tables(folder)
        missing = [t for t in REQUIRED if t not in self.tables]
        if missing:
            raise SourceFormatError(
                f"{folder}: no CSV for table {', '.join(missing)} "
                f"(looked for headers with {'; '.join(','.join(TABLES[t]) for t in missing)})",
                hint="export message, rcontact and userinfo from EnMicroMsg.db",
            )
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        self._count: int | None = None
        self._account = account_from_userinfo(self._rows("userinfo"), self.tables["userinfo"].name)

    @property
    def source_key(self) -> str:
        return f"android:{self._account.wxid}"

    def _rows(self, table: str) -> Iterator[dict[str, str]]:
        if table not in self.tables:
            return
        path = self.tables[table]
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                yield from csv.DictReader(f)
        except (UnicodeDecodeError, csv.Error) as err:
            raise SourceFormatError(f"{path.name} cannot be read as CSV: {err}") from err

    def account(self) -> Account:
        return self._account

    def contacts(self) -> Iterator[Contact]:
        for row in self._rows("rcontact"):
            if row.get("username"):
                yield contact_from_rcontact(row, self._account.wxid)
        for row in self._rows("chatroom"):
            yield from strangers_from_chatroom(row)

    def members(self) -> Iterator[Member]:
        for row in self._rows("chatroom"):
            if row.get("chatroomname"):
                yield from members_from_chatroom(row)

    def count(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self._rows("message"))
        return self._count

    def rows(self) -> Iterator[Sequence[Any]]:
        for row in self._rows("message"):
            if None in row or None in row.values():  # a line with too many or too few fields
                self.skipped["wrong number of CSV fields"] += 1
                continue
            yield [row[c] for c in MESSAGE_COLUMNS]

    def row_mapper(self) -> RowMapper:
        return partial(message_from_row, source=self.source_key, self_wxid=self._account.wxid)

    def close(self) -> None:
        pass
