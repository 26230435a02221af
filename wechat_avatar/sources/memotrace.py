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
(localIds restart in every MSGn.db). A row and what it becomes::

    ("wxid_hu", "406", "1", "0", "0", "1687360045", "好", "wxid_hu")      # chat id, then the row's own cells
    -> Message(source="memotrace:wxid_me", source_id="wxid_hu:1687360045:406", chat_id="wxid_hu",
               sender="wxid_hu", is_self=False, timestamp_ms=1687360045000, base_type=1, sub_type=0, content="好")
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.errors import SourceFormatError, UsageError
from wechat_avatar.sources.base import BadRecord, Hints, RowMapper
from wechat_avatar.sources.rebuild import bare_appmsg
from wechat_avatar.sources.textfile import CsvFile, common_folder, count_lines

COLUMNS = ("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
           "Remark", "NickName", "Sender")  # fmt: skip
_ROW = ("localId", "Type", "SubType", "IsSender", "CreateTime", "StrContent", "Sender")
SYSTEM_TYPES = frozenset({10000, 10002})
SYSTEM_NAMES = {"文件传输助手": "filehelper", "微信团队": "weixin", "朋友推荐消息": "fmessage"}  # the same everywhere


def message_from_row(row: Sequence[Any], source: str, self_wxid: str) -> Message:
    """(chat id, then the _ROW cells) -> Message (raises BadRecord)."""
    chat, local_id, type_, sub, is_sender, created, content, sender = row
    try:
        base, sub_type, seconds = int(type_), int(sub or 0), int(created)
    except ValueError:
        raise BadRecord("non-numeric Type, SubType or CreateTime") from None
    is_self = is_sender.strip() == "1"
    if base in SYSTEM_TYPES:
        sender = ""
    elif is_self:
        sender = self_wxid
    elif not sender and not chat.endswith("@chatroom"):
        sender = chat
    if base == 49 and not content:  # the XML was in CompressContent, which the export leaves out
        content = bare_appmsg(sub_type)
    return Message(source, f"{chat}:{seconds}:{local_id}", chat, sender, is_self, seconds * 1000, base, sub_type,
                   content, base, None)  # fmt: skip


@dataclass
class _Chat:
    """What one chat file says about itself, from a first pass over it."""

    path: Path
    others: Counter[str] = field(default_factory=Counter)  # senders who are not you
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # wxid -> (remark, nickname)
    own: str = ""  # your wxid, from your own rows
    rows: int = 0
    chat_id: str = ""


class MemoTraceExport:
    kind = "memotrace"

    def __init__(self, files: list[Path], hints: Hints) -> None:
        self.files, self.path = sorted(files), common_folder([f.parent for f in files])
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        self.chats = [self._survey(p) for p in self.files]
        if not any(c.rows for c in self.chats):
            raise SourceFormatError(f"the MemoTrace export in {self.path} holds no messages",
                                    hint="export the chats again from MemoTrace")  # fmt: skip
        wxid = hints.self_wxid or next((c.own for c in self.chats if c.own), "") or hints.account()
        if not wxid:
            raise UsageError("cannot tell whose MemoTrace export this is", hint="pass --self wxid_… (your wxid)")
        self.self_wxid = wxid
        self._place(hints.names())

    def _survey(self, path: Path) -> _Chat:
        chat, table = _Chat(path), CsvFile(path)
        where = [table.header.index(c) for c in ("IsSender", "Type", "Remark", "NickName", "Sender")]
        for cells in table.rows():
            if len(cells) != len(table.header):
                continue
            is_sender, type_, remark, nickname, sender = (cells[i] for i in where)
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

    @property
    def source_key(self) -> str:
        return f"memotrace:{self.self_wxid}"

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

    def members(self) -> Iterator[Member]:
        for chat in self.chats:
            if chat.chat_id.endswith("@chatroom"):
                yield from (Member(chat.chat_id, wxid) for wxid in chat.others)

    def count(self) -> int:
        return sum(count_lines(p) for p in self.files)

    def rows(self) -> Iterator[Sequence[Any]]:
        gbk = 0
        for chat in self.chats:
            table = CsvFile(chat.path)
            pick = itemgetter(*(table.header.index(c) for c in _ROW))
            for cells in table.rows():
                if len(cells) != len(table.header):
                    self.skipped["wrong number of CSV fields"] += 1
                    continue
                yield (chat.chat_id, *pick(cells))
            gbk += table.gbk_lines
        if gbk:
            self.notes.append(f"{gbk} lines were not UTF-8 and were read as GBK")

    def row_mapper(self) -> RowMapper:
        return partial(message_from_row, source=self.source_key, self_wxid=self.self_wxid)

    def close(self) -> None:
        pass
