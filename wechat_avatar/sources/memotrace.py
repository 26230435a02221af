"""MemoTrace / WeChatMsg CSV exports of PC 3.x (reference §5.1).

Files `聊天记录/<remark>/<remark>_utf8.csv`, found by their columns
`localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,NickName,Sender`:
PC 3.x's MSG columns (CreateTime in seconds, StrContent raw) and the sender's names.

What the export loses: every type-49 payload (its XML is in CompressContent, which it leaves
out), so links, files, quotes … keep only their type's placeholder (a quote renders as
failed, "empty content"); a call's duration (DisplayContent); the server id, so merging
with another source goes by chat, sender, second and text; and the chat's own id. A private
chat's id is the contact's wxid from `Sender`; a group's is the workspace's group of that
name (ingest the phone or PC database first), else a stand-in `memotrace_<md5>@chatroom`
named after the folder. Source key `memotrace:<wxid>`, source_id `<chat>:<CreateTime>:<localId>`
(localIds restart in every MSGn.db). A CreateTime a spreadsheet spoiled falls back to StrTime
(local, --timezone). A type-49 StrContent that is plain text (not XML) is kept as its title.

Older WeChatMsg wrote every chat into one `messages.csv` with only the first nine columns
(`localId … StrTime`, some rows with one field more): its chats are filed under their
`TalkerId`, its senders are unknown (the chat itself in a private chat), and whose it is
comes from --self or the workspace. A row and what it becomes::

    ("wxid_hu", "406", "1", "0", "0", "1687360045", "好", "wxid_hu", "2023-06-21 23:07:25")  # chat id, then cells
    -> Message(source="memotrace:wxid_me", source_id="wxid_hu:1687360045:406", chat_id="wxid_hu",
               sender="wxid_hu", is_self=False, timestamp_ms=1687360045000, base_type=1, sub_type=0, content="好")
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources import rebuild
from wechat_avatar.sources.base import (
    BadRecord,
    ExportReader,
    Hints,
    RowMapper,
    readable_files,
    resolve_self,
    why_unreadable,
)
from wechat_avatar.sources.textfile import BROKEN_ROW, GBK_NOTE, CsvFile, common_folder, count_lines, local_ms

ALL_IN_ONE = ("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime")
COLUMNS = (*ALL_IN_ONE, "Remark", "NickName", "Sender")
_ROW = ("localId", "Type", "SubType", "IsSender", "CreateTime", "StrContent", "Sender", "StrTime")
_ALL_ROW = ("TalkerId", "localId", "Type", "SubType", "IsSender", "CreateTime", "StrContent", "Sender", "StrTime")
SYSTEM_TYPES = frozenset({10000, 10002})
SYSTEM_NAMES = {"文件传输助手": "filehelper", "微信团队": "weixin", "朋友推荐消息": "fmessage"}  # the same everywhere


def message_from_row(row: Sequence[Any], source: str, self_wxid: str, tz: str) -> Message:
    """(chat id, then the _ROW cells) -> Message (raises BadRecord)."""
    chat, local_id, type_, sub, is_sender, created, content, sender, str_time = row
    try:
        base, sub_type = int(type_), int(sub or 0)
    except ValueError:
        raise BadRecord("non-numeric Type or SubType") from None
    ms = _ms(created, str_time, tz)
    is_self = is_sender.strip() == "1"
    if base in SYSTEM_TYPES:
        sender = ""
    elif is_self:
        sender = self_wxid
    elif not sender and not chat.endswith("@chatroom"):
        sender = chat
    if base == 49 and not content.lstrip().startswith("<"):  # the XML was in CompressContent, left out
        content = rebuild.words(sub_type, content)
    return Message(source, f"{chat}:{ms // 1000}:{local_id}", chat, sender, is_self, ms, base, sub_type,
                   content, base, None)  # fmt: skip


def _ms(created: str, str_time: str, tz: str) -> int:
    """CreateTime in seconds (milliseconds if 13 digits), else either column as local_ms reads it."""
    try:
        seconds = int(created)
        return seconds if abs(seconds) >= 10**12 else seconds * 1000
    except ValueError:
        pass
    try:
        return local_ms(created, tz)
    except BadRecord:
        if not str_time:
            raise
    try:
        return local_ms(str_time, tz)
    except BadRecord:
        raise BadRecord("unreadable time", created or str_time) from None


@dataclass
class _Chat:
    """What one chat file says about itself, from a first pass over it."""

    path: Path
    others: Counter[str] = field(default_factory=Counter)  # senders who are not you
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # wxid -> (remark, nickname)
    own: str = ""  # your wxid, from your own rows
    rows: int = 0
    chat_id: str = ""


def _all_in_one(header: Sequence[str]) -> bool:
    return "Sender" not in header


class MemoTraceExport(ExportReader):
    """Per-chat `<remark>_utf8.csv` files, or older all-in-one `messages.csv` ones, or both.

    A file of which no row can be read is left out and named in the summary; an export of
    which no file can be read is a SourceFormatError."""

    kind = "memotrace"

    def __init__(self, files: list[Path], hints: Hints) -> None:
        super().__init__(common_folder([f.parent for f in files]))
        self.tz = hints.timezone
        self.gbk = 0  # lines read as GBK, for the note once the rows are read
        self.files, self.notes = readable_files(sorted(files), self._why_not, f"the MemoTrace export in {self.path}")
        self.combined = [p for p in self.files if _all_in_one(CsvFile(p).header)]
        self.chats = [self._survey(p) for p in self.files if p not in self.combined]
        self.talkers: dict[str, None] = {}  # the all-in-one files' chats, in order
        for path in self.combined:
            self.talkers.update(dict.fromkeys(row[0] for row in self._cells(path, _ALL_ROW, count=False)))
        if not any(c.rows for c in self.chats) and not self.talkers:
            raise SourceFormatError(f"the MemoTrace export in {self.path} holds no messages",
                                    hint="export the chats again from MemoTrace")  # fmt: skip
        self.self_wxid = resolve_self(hints, next((c.own for c in self.chats if c.own), None),
                                      message="cannot tell whose MemoTrace export this is",
                                      hint="pass --self wxid_… (your wxid)")  # fmt: skip
        self._place(hints.names())

    def _why_not(self, path: Path) -> str | None:
        mapper = partial(message_from_row, source="", self_wxid="", tz=self.tz)
        columns = _ALL_ROW if _all_in_one(CsvFile(path).header) else ("", *_ROW)  # "": no chat id yet
        return why_unreadable(lambda: self._cells(path, columns, whole=False, count=False), mapper)

    def _cells(
        self, path: Path, columns: Sequence[str], whole: bool = True, count: bool = True
    ) -> Iterator[tuple[str, ...]]:
        """The file's rows as `columns` (a column it lacks reads ""); rows of the wrong width are
        counted in `skipped` (where `count`), an all-in-one row may have one field more."""
        table = CsvFile(path)
        where = [table.header.index(c) if c in table.header else None for c in columns]
        width = len(table.header)
        extra = 1 if _all_in_one(table.header) else 0
        for cells in table.rows(whole):
            if not width <= len(cells) <= width + extra:
                self.skipped[BROKEN_ROW] += count
                continue
            yield tuple("" if i is None else cells[i] for i in where)
        if count:
            self.gbk += table.gbk_lines

    def _survey(self, path: Path) -> _Chat:
        chat = _Chat(path)
        for is_sender, type_, remark, nickname, sender in self._cells(
            path, ("IsSender", "Type", "Remark", "NickName", "Sender"), count=False
        ):
            chat.rows += 1
            if is_sender.strip() == "1":
                chat.own = chat.own or sender
            elif sender and type_ not in ("10000", "10002"):
                chat.others[sender] += 1
            if sender:
                chat.names[sender] = (remark, nickname)
        return chat

    def _place(self, known: Mapping[str, str]) -> None:
        """Give each chat its id: a chat the workspace knows by this name, the one other speaker of a
        private chat, or a stand-in named after the folder."""
        known = {**SYSTEM_NAMES, **known}
        for chat in self.chats:
            name = chat.path.parent.name
            wxid = known.get(name, "")
            if wxid and (wxid.endswith("@chatroom") or not chat.others or wxid in chat.others):
                chat.chat_id = wxid
            elif len(chat.others) == 1:
                chat.chat_id = next(iter(chat.others))
            elif not chat.others:  # only your own messages: a private chat whose partner never wrote
                chat.chat_id = f"memotrace_{hashlib.md5(name.encode()).hexdigest()[:10]}"
            else:
                chat.chat_id = f"memotrace_{hashlib.md5(name.encode()).hexdigest()[:10]}@chatroom"
                self.notes.append(f"group {name!r} has no id in a MemoTrace export: stored as {chat.chat_id}; "
                                  "ingest the phone or PC database first to file it under the real group")  # fmt: skip

    def account(self) -> Account:
        nickname = next((c.names[self.self_wxid][1] for c in self.chats if self.self_wxid in c.names), "")  # Me()
        return Account(self.self_wxid, nickname)

    def contacts(self) -> Iterator[Contact]:
        for chat in self.chats:
            if chat.chat_id not in chat.names:  # a group, or a chat nobody but you wrote in: named by its folder
                yield Contact(chat.chat_id, nickname=chat.path.parent.name, kind=contact_kind(chat.chat_id))
            for wxid, (remark, nickname) in chat.names.items():
                friend = wxid == chat.chat_id  # only a private chat says you are friends
                kind = ContactKind.SELF if wxid == self.self_wxid else contact_kind(wxid, is_friend=friend)
                yield Contact(wxid, remark=remark, nickname=nickname, kind=kind)
        for talker in self.talkers:  # all-in-one files name no one
            yield Contact(talker, kind=contact_kind(talker))

    def members(self) -> Iterator[Member]:
        for chat in self.chats:
            if chat.chat_id.endswith("@chatroom"):
                yield from (Member(chat.chat_id, wxid) for wxid in chat.others)

    def count(self) -> int:
        return sum(count_lines(p) for p in self.files)

    def rows(self) -> Iterator[Sequence[Any]]:
        self.gbk = 0
        for chat in self.chats:
            for cells in self._cells(chat.path, _ROW):
                yield (chat.chat_id, *cells)
        for path in self.combined:
            yield from self._cells(path, _ALL_ROW)
        if self.gbk:
            self.notes.append(GBK_NOTE.format(self.gbk))

    def row_mapper(self) -> RowMapper:
        return partial(message_from_row, source=self.source_key, self_wxid=self.self_wxid, tz=self.tz)
