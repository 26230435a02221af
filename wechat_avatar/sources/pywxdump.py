"""PyWxDump's CSV and JSON exports of the PC 3.x database, with their users.json (reference §5.2).

Files `<chat>_<start>_<end>.csv` (or `.json`), found by their columns
`id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime`. PyWxDump keeps a
Chinese label instead of the type and an already rendered `msg`; `pywxdump_row` maps the
label back to (type, subtype) and rebuilds what the renderer reads from `msg` where it
survived (other text is kept whole: a quote without its `[引用]` tail is its reply).
`CreateTime` is local time (--timezone), as PyWxDump or a spreadsheet writes it
(`textfile.local_ms`). Source key `pywxdump:<wxid>`, source_id = MsgSvrID (the same server
id as every other source), or `<room>:<id>` where it is 0. Big exports are read by worker
processes a few files at a time, column-wise where `pywxdump_stage` can.

What the export loses, so these render differently from the phone: the title of 49/4
video shares (4 and 5 share one label, read as 5); the name or title of files, music, mini
programs and Channels shares (only their label survives); pats and red packets, which
PyWxDump labels "未知" and so become an unknown type; group names and members (users.json
lists speakers, not chats). Cards, friend requests and system lines stay raw. A row and what it
becomes::

    (7, "77310", "引用回复", 0, "wxid_a", "123@chatroom", "我没问我爸\\n\\n[引用](2023-06-21 23:06:40)??:我妈说可以",
     "", "2023-06-21 23:07:25")
    -> Message(source="pywxdump:wxid_me", source_id="77310", chat_id="123@chatroom", sender="wxid_a",
               is_self=False, timestamp_ms=1687360045000, base_type=49, sub_type=57,
               content="<msg><appmsg><title>我没问我爸</title><type>57</type><refermsg>…", server_id=77310)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, contact_kind
from wechat_avatar.config import RenderConfig
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources.base import (
    BadRecord,
    ChunkRows,
    ExportReader,
    Hints,
    RowMapper,
    readable_files,
    resolve_self,
    why_unreadable,
)
from wechat_avatar.sources.pywxdump_row import COLUMNS, NO_SENDER, message_from_row
from wechat_avatar.sources.textfile import BROKEN_ROW, GBK_NOTE, CsvFile, common_folder, count_lines
from wechat_avatar.staging import Prepared

__all__ = ["COLUMNS", "ExportFiles", "PyWxDumpExport", "message_from_row"]
_FILE = re.compile(r"^(.+)_\d+_\d+\.(?:csv|json)$")
# messages per worker task: PyWxDump's files hold at most 5000 and each task has a fixed
# cost (an ADBC database, the hand-over), so a worker takes a few files at a time
CHUNK_ROWS = 20_000


def contact_from_user(user: dict[str, Any], self_wxid: str, private: set[str]) -> Contact:
    """A users.json entry -> Contact; only chats with a file of their own are known friends."""
    wxid = str(user.get("wxid") or "")
    kind = ContactKind.SELF if wxid == self_wxid else contact_kind(wxid, is_friend=wxid in private)
    return Contact(wxid=wxid, nickname=str(user.get("nickname") or ""), remark=str(user.get("remark") or ""),
                   alias=str(user.get("account") or ""), kind=kind)  # fmt: skip


class PyWxDumpExport(ExportReader):
    """Every PyWxDump message file found (CSV or JSON) and the users.json files beside them.

    A file of which no row can be read (every time unreadable, not JSON …) is left out and
    named in the summary; an export of which no file can be read is a SourceFormatError."""

    kind = "pywxdump"

    def __init__(self, files: list[Path], users: list[Path], hints: Hints) -> None:
        super().__init__(common_folder(files))
        self.tz = hints.timezone
        self._csv: list[CsvFile] = []
        self._size: dict[Path, int] | None = None
        self.users: dict[str, dict[str, Any]] = {}
        for path in users:
            self.users.update(_load_json(path) or {})
        self.files, self.notes = readable_files(sorted(files), self._why_not, f"the PyWxDump export in {self.path}")
        if self.count() == 0:
            hint = "export the chat again; PyWxDump writes a header even for an empty chat"
            raise SourceFormatError(f"the PyWxDump export in {self.path} holds no messages", hint=hint)
        self.self_wxid = resolve_self(hints, self._own_wxid, message="this PyWxDump export names you only as '我'",
                                      hint="pass --self wxid_… (your wxid)")  # fmt: skip

    def _why_not(self, path: Path) -> str | None:
        mapper = partial(message_from_row, source="", self_wxid="", tz=self.tz)
        return why_unreadable(lambda: _file_rows(path, [], whole=False), partial(_whole_row, mapper=mapper))

    def _own_wxid(self) -> str | None:
        """Newer PyWxDump writes your wxid as the talker of your own messages."""
        rows = self._raw()
        try:
            mine = next((row for row in rows if row and str(row[3]).strip() == "1"), None)
        finally:
            rows.close()
        return None if mine is None or mine[4] in NO_SENDER else str(mine[4])

    def account(self) -> Account:
        return Account(self.self_wxid, str(self.users.get(self.self_wxid, {}).get("nickname") or ""))

    def contacts(self) -> Iterator[Contact]:
        chats = {m[1] for p in self.files if (m := _FILE.match(p.name))}
        private = {c for c in chats if not c.endswith("@chatroom")}
        for user in self.users.values():
            if isinstance(user, dict) and user.get("wxid"):
                yield contact_from_user(user, self.self_wxid, private)

    def members(self) -> Iterator[Member]:
        return iter(())  # users.json does not say who is in which group

    def count(self) -> int:
        return sum(self._sizes().values())

    def _sizes(self) -> dict[Path, int]:
        """Messages per file (CSV lines, a close estimate): counted once, reading every file."""
        if self._size is None:
            self._size = {p: count_lines(p) if p.suffix == ".csv" else _json_count(p) for p in self.files}
        return self._size

    def _raw(self) -> Iterator[Sequence[Any]]:
        for path in self.files:
            yield from _file_rows(path, self._csv)

    def rows(self) -> Iterator[Sequence[Any]]:
        self._csv = []
        for row in self._raw():
            if row:
                yield row
            else:
                self.skipped[BROKEN_ROW] += 1
        gbk = sum(t.gbk_lines for t in self._csv)
        if gbk:
            self.notes.append(GBK_NOTE.format(gbk))

    def chunks(self) -> list[ExportFiles]:
        """Consecutive files in groups of about CHUNK_ROWS messages."""
        from wechat_avatar.sources import pywxdump_stage  # noqa: F401  here, so forked workers have it

        groups: list[list[Path]] = [[]]
        size = 0
        for path, lines in self._sizes().items():
            if size >= CHUNK_ROWS:
                groups.append([])
                size = 0
            groups[-1].append(path)
            size += lines
        return [ExportFiles(tuple(g), self.source_key, self.self_wxid, self.tz) for g in groups if g]

    def row_mapper(self) -> RowMapper:
        return partial(message_from_row, source=self.source_key, self_wxid=self.self_wxid, tz=self.tz)


@dataclass(frozen=True)
class ExportFiles:
    """A few message files, read whole in a worker process (a Chunk): their rows as `rows()` gives them."""

    paths: tuple[Path, ...]
    source: str
    self_wxid: str
    tz: str

    def stage(self, cfg: RenderConfig, scratch: Path) -> Prepared | None:
        """The files mapped column-wise in Arrow where they can be (see pywxdump_stage)."""
        from wechat_avatar.sources.pywxdump_stage import stage_files  # pyarrow: only where a worker stages

        return stage_files(self.paths, self.source, self.self_wxid, self.tz, cfg, scratch)

    def read(self) -> ChunkRows:
        tables: list[CsvFile] = []
        rows = [row for path in self.paths for row in _file_rows(path, tables)]
        good = [row for row in rows if row]
        gbk = sum(t.gbk_lines for t in tables)
        broken = len(rows) - len(good)
        return ChunkRows(good, Counter({BROKEN_ROW: broken} if broken else {}),
                         Counter({GBK_NOTE: gbk} if gbk else {}))  # fmt: skip


def _whole_row(row: Sequence[Any], mapper: RowMapper) -> Any:
    if not row:
        raise BadRecord(BROKEN_ROW)
    return mapper(row)


def _file_rows(path: Path, tables: list[CsvFile], whole: bool = True) -> Iterator[Sequence[Any]]:
    """One message file's rows in COLUMNS order; () for a row that cannot be (wrong width).
    `whole=False` decodes a CSV a line at a time, for a look at its first rows."""
    if path.suffix == ".json":
        for item in _load_json(path) or []:
            yield tuple(item.get(c, "") for c in COLUMNS) if isinstance(item, dict) else ()
        return
    table = CsvFile(path)
    tables.append(table)
    pick = itemgetter(*(table.header.index(c) for c in COLUMNS))
    width = len(table.header)
    for cells in table.rows(whole):
        yield pick(cells) if len(cells) == width else ()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SourceFormatError(f"{path.name} is not readable JSON: {err}") from err


def _json_count(path: Path) -> int:
    return path.read_bytes().count(b'"MsgSvrID"')
