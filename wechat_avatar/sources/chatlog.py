"""chatlog (sjzar/chatlog) API answers saved as JSON or CSV (reference §5.4).

JSON (`format=json`): a list of messages with `seq, time, talker, isSelf, type, subType,
content, contents`; the time carries its zone. chatlog parses each payload: text keeps its
words, a quote its reply and the quoted line, a link or file its title, a transfer a
summary line; on 3.x data `content` may still be the raw XML, which is kept as it is. CSV
(`format=csv`): `Time,SenderName,Sender,TalkerName,Talker,Content`, the Content being
chatlog's plain-text rendering, read back by its shape; Time is local (--timezone).

What they lose: card nicknames, locations, friend requests, call durations and chat-record
titles (nothing kept); a mini program keeps its app name, not its title; a pat keeps its
template, so wxids stand where names were; the CSV also loses video-share descriptions and
quoted lines, and a typed message that looks like a tag ("[红包]") reads as that tag.
Source key `chatlog:<wxid>`, source_id `<talker>:<seq>` (JSON) or `<talker>:<time>:<n>` (CSV).
A JSON message and what it becomes::

    {"seq": 1687360045123, "time": "2023-06-21T23:07:25+08:00", "talker": "123@chatroom", "sender": "wxid_a",
     "isSelf": false, "type": 49, "subType": 57, "content": "我没问我爸",
     "contents": {"refer": {"type": 1, "senderName": "??", "content": "我妈说可以"}}}
    -> Message(source="chatlog:wxid_me", source_id="123@chatroom:1687360045123", chat_id="123@chatroom",
               sender="wxid_a", is_self=False, timestamp_ms=1687360045000, base_type=49, sub_type=57,
               content="<msg><appmsg><title>我没问我爸</title><type>57</type><refermsg>…")
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import partial
from operator import itemgetter
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

JSON_KEYS = ("seq", "time", "talker", "isSelf", "type", "subType", "content", "contents", "sender")
CSV_COLUMNS = ("Time", "SenderName", "Sender", "TalkerName", "Talker", "Content")
SYSTEM_SENDER = "系统消息"
SYSTEM_TYPES = frozenset({10000, 10002})
_TRANSFER = re.compile(r"^\[转账\|(发送 |接收 |退还 )?(.*?)\](?:\((.*)\))?$", re.DOTALL)
# PlainTextContent() shapes -> (type, subtype, pattern with the groups the rebuild needs)
_SHAPES: list[tuple[int, int, re.Pattern[str]]] = [
    (3, 0, re.compile(r"^!\[图片\]\(")),
    (43, 0, re.compile(r"^!\[视频\]\(")),
    (34, 0, re.compile(r"^\[语音\](?:\(|$)")),
    (49, 4, re.compile(r"^\[分享\|(.*?)\|(.*)\]\((.*)\)$", re.DOTALL)),
    (49, 5, re.compile(r"^\[链接\|(.*)\]\((.*)\)$", re.DOTALL)),
    (49, 6, re.compile(r"^\[文件\|(.*)\]\(")),
    (49, 33, re.compile(r"^\[小程序(?:\|(.*))?\](?:\(.*\))?$", re.DOTALL)),
    (49, 51, re.compile(r"^\[视频号(?:\|(.*))?\](?:\(.*\))?$", re.DOTALL)),
    (49, 57, re.compile(r"^((?:> [^\n]*\n)+)([\s\S]*)$|^\[引用\]$")),
    (49, 2000, _TRANSFER),
    (49, 62, re.compile(r'^".*\$\{.+\}.*" 拍了拍 ')),
]
_TAGS = {"[名片]": (42, 0), "[动画表情]": (47, 0), "[GIF表情]": (49, 8), "[合并转发]": (49, 19), "[群公告]": (49, 87),
         "[红包]": (49, 2001), "[红包封面]": (49, 2003), "[分享]": (49, 0), "[语音通话]": (50, 0)}  # fmt: skip
_OTHER = re.compile(r"^Type: (\d+) Content: (.*)$", re.DOTALL)


def content_from_json(base: int, sub: int, content: str, contents: dict[str, Any]) -> str:
    """Rebuild a payload from chatlog's parse of it (raw XML from 3.x data is kept as is)."""
    if base != 49 or content.lstrip().startswith("<"):
        return content
    title = str(contents.get("title") or "")
    if sub == 57:
        refer = contents.get("refer") or {}
        return rebuild.quote(content, str(refer.get("senderName") or refer.get("sender") or ""),
                             str(refer.get("content") or ""), int(refer.get("type") or 1))  # fmt: skip
    if sub == 62:
        return rebuild.pat(content) if content else ""
    if sub == 2000 and (m := _TRANSFER.match(content)):
        return rebuild.transfer(m[2], m[3] or "", 3 if m[1] == "接收 " else 1)
    if sub in (33, 36):
        return rebuild.appmsg(sub, sourcedisplayname=title) if title else rebuild.words(sub, content)
    if title:
        return rebuild.appmsg(sub, title, des=str(contents.get("desc") or ""), url=str(contents.get("url") or ""))
    return rebuild.words(sub, content)  # no title parsed: whatever text chatlog gave is kept


def message_from_json(row: Sequence[Any], source: str, self_wxid: str, tz: str) -> Message:
    """One JSON message, values in JSON_KEYS order -> Message (raises BadRecord). The time
    carries its zone; one that does not is local (--timezone)."""
    seq, when, talker, is_self, base, sub, content, contents, sender = row
    if not talker or not isinstance(base, int):
        raise BadRecord("no talker or type")
    ms = local_ms(str(when), tz)
    content = content_from_json(base, sub or 0, str(content or ""), contents or {})
    sender = _sender(str(sender or ""), bool(is_self), base, talker, self_wxid)
    return Message(source, f"{talker}:{seq}", talker, sender, bool(is_self) or sender == self_wxid, ms, base,
                   sub or 0, content, None, None)  # fmt: skip


def _sender(sender: str, is_self: bool, base: int, talker: str, self_wxid: str) -> str:
    if base in SYSTEM_TYPES or sender == SYSTEM_SENDER:
        return ""
    if is_self:
        return self_wxid
    return sender or ("" if talker.endswith("@chatroom") else talker)


def shape(text: str, sender: str) -> tuple[int, int, str]:
    """A CSV Content back to (type, subtype, payload) by the shape PlainTextContent gave it."""
    if sender == SYSTEM_SENDER:
        return 10000, 0, text
    if text in _TAGS:
        base, sub = _TAGS[text]
        return base, sub, rebuild.bare_appmsg(sub) if base == 49 else ""
    for base, sub, pattern in _SHAPES:
        if m := pattern.match(text):
            return base, sub, _payload(base, sub, m, text)
    if m := _OTHER.match(text):
        return int(m[1]), 0, m[2]
    return 1, 0, text


def _payload(base: int, sub: int, m: re.Match[str], text: str) -> str:
    if base != 49:
        return ""
    if sub == 57:
        return _quote(m[1], m[2]) if m[2] else ""
    if sub == 62:
        return rebuild.pat(text)
    if sub == 2000:
        return rebuild.transfer(m[2], m[3] or "", 3 if m[1] == "接收 " else 1)
    if sub == 33:
        return rebuild.appmsg(33, sourcedisplayname=m[1]) if m[1] else rebuild.bare_appmsg(33)
    title = m[1] or ""
    url = m[3] if sub == 4 else (m[2] if sub == 5 else "")
    return rebuild.appmsg(sub, title, url=url) if title else rebuild.bare_appmsg(sub)


def _quote(quoted: str, title: str) -> str:
    """'> 胡三行(wxid_hu) 06-21 23:06:40\\n> 我妈说可以\\n' + '我没问我爸' -> a quote payload."""
    head, *lines = [line[2:] for line in quoted.rstrip("\n").split("\n")]
    name = head.rsplit(" ", 2)[0]  # "name(wxid) MM-DD HH:MM:SS"
    name = name[: name.rfind("(")] if name.endswith(")") and "(" in name else name
    return rebuild.quote(title, name, "\n".join(lines))


def message_from_csv(row: Sequence[Any], source: str, self_wxid: str, tz: str) -> Message:
    """(Time, Sender, Talker, Content, n) -> Message, n telling apart rows of one chat and second."""
    when, sender, talker, text, n = row
    if not talker:
        raise BadRecord("no Talker")
    base, sub, content = shape(text, sender)
    is_self = sender == self_wxid
    sender = _sender(sender, is_self, base, talker, self_wxid)
    return Message(source, f"{talker}:{when}:{n}", talker, sender, is_self, local_ms(when, tz), base, sub,
                   content, None, None)  # fmt: skip


def _chat_contacts(chats: dict[str, str], people: dict[tuple[str, str], str], self_wxid: str) -> Iterator[Contact]:
    """Contacts from the names chatlog printed: a chat's own name, and private partners' names."""
    for talker, name in chats.items():
        yield Contact(talker, nickname=name, kind=contact_kind(talker, is_friend=True))
    for (talker, wxid), name in people.items():
        if wxid == self_wxid:
            yield Contact(wxid, nickname=name, kind=ContactKind.SELF)
        elif not talker.endswith("@chatroom"):
            yield Contact(wxid, nickname=name, kind=contact_kind(wxid))
        else:  # a name in a group may be the one used there: known only as a member's
            yield Contact(wxid, kind=contact_kind(wxid, is_friend=False))


class _Chatlog(ExportReader, ABC):
    """What the JSON and CSV readers share: a first pass for names and for whose history it is.

    A file of which no message can be read is left out and named in the summary; an export of
    which no file can be read is a SourceFormatError."""

    kind = "chatlog"
    key_prefix = "chatlog"

    def __init__(self, files: list[Path], hints: Hints) -> None:
        super().__init__(common_folder(files))
        self.tz = hints.timezone
        self.files: list[Path] = []  # until the readable ones are known
        self.files, self.notes = readable_files(sorted(files), self._why_not, f"the chatlog export in {self.path}")
        self.chats: dict[str, str] = {}  # talker -> its name
        self.people: dict[tuple[str, str], str] = {}  # (talker, sender) -> the sender's name
        own: Counter[str] = Counter()
        for talker, talker_name, sender, sender_name, mine in self._survey():
            self.chats.setdefault(talker, talker_name)
            if sender and sender != SYSTEM_SENDER:
                self.people.setdefault((talker, sender), sender_name)
                if mine is True or (mine is None and "@" not in talker and sender != talker):
                    own[sender] += 1  # no isSelf in CSV: in a private chat, whoever is not the contact
        if not self.chats:
            raise SourceFormatError(f"the chatlog export in {self.path} holds no messages",
                                    hint="save the API answer again with a time range that has messages")  # fmt: skip
        self.self_wxid = resolve_self(hints, own.most_common(1)[0][0] if own else None,
                                      message="cannot tell whose chatlog export this is",
                                      hint="pass --self wxid_… (your wxid)")  # fmt: skip

    def _why_not(self, path: Path) -> str | None:
        return why_unreadable(lambda: self._rows([path]), self._mapper("", ""))

    @abstractmethod
    def _rows(self, files: list[Path]) -> Iterator[Sequence[Any]]:
        """The files' raw message rows, as `rows()` yields them."""

    @abstractmethod
    def _mapper(self, source: str, self_wxid: str) -> RowMapper: ...

    def rows(self) -> Iterator[Sequence[Any]]:
        return self._rows(self.files)

    def row_mapper(self) -> RowMapper:
        return self._mapper(self.source_key, self.self_wxid)

    @abstractmethod
    def _survey(self) -> Iterator[tuple[str, str, str, str, bool | None]]:
        """(talker, talker name, sender, sender name, is-self if the format says) per message."""

    def account(self) -> Account:
        names = (name for (_, wxid), name in self.people.items() if wxid == self.self_wxid and name)
        return Account(self.self_wxid, next(names, ""))

    def contacts(self) -> Iterator[Contact]:
        return _chat_contacts(self.chats, self.people, self.self_wxid)

    def members(self) -> Iterator[Member]:
        for (talker, wxid), name in self.people.items():
            if talker.endswith("@chatroom"):
                yield Member(talker, wxid, name)


class ChatlogJson(_Chatlog):
    kind = "chatlog-json"

    def _messages(self, files: list[Path] | None = None) -> Iterator[dict[str, Any]]:
        for path in self.files if files is None else files:
            try:
                items = json.loads(path.read_text(encoding="utf-8-sig"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise SourceFormatError(f"{path.name} is not readable JSON: {err}") from err
            items = items.get("items", []) if isinstance(items, dict) else items  # some answers wrap the list
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    yield item
                else:
                    self.skipped["not a message object"] += 1

    def _survey(self) -> Iterator[tuple[str, str, str, str, bool | None]]:
        for m in self._messages():
            yield (str(m.get("talker") or ""), str(m.get("talkerName") or ""), str(m.get("sender") or ""),
                   str(m.get("senderName") or ""), bool(m.get("isSelf")))  # fmt: skip

    def count(self) -> int:
        return sum(p.read_bytes().count(b'"talker"') for p in self.files)

    def _rows(self, files: list[Path]) -> Iterator[Sequence[Any]]:
        self.skipped.clear()  # the first passes counted them too
        for m in self._messages(files):
            yield tuple(m.get(k) for k in JSON_KEYS)

    def _mapper(self, source: str, self_wxid: str) -> RowMapper:
        return partial(message_from_json, source=source, self_wxid=self_wxid, tz=self.tz)


class ChatlogCsv(_Chatlog):
    kind = "chatlog-csv"
    key_prefix = "chatlog-csv"  # not the JSON's: the two share no ids, so they merge like two sources

    def _cells(self, skip: bool = False, files: list[Path] | None = None) -> Iterator[list[str]]:
        gbk = 0
        for path in self.files if files is None else files:
            table = CsvFile(path)
            pick = itemgetter(*(table.header.index(c) for c in CSV_COLUMNS))
            for cells in table.rows():
                if len(cells) != len(table.header):
                    self.skipped[BROKEN_ROW] += skip
                    continue
                yield pick(cells)
            gbk += table.gbk_lines
        if gbk and skip:
            self.notes.append(GBK_NOTE.format(gbk))

    def _survey(self) -> Iterator[tuple[str, str, str, str, bool | None]]:
        for _, sender_name, sender, talker_name, talker, _ in self._cells():
            yield talker, talker_name, sender, sender_name, None

    def count(self) -> int:
        return sum(count_lines(p) for p in self.files)

    def _rows(self, files: list[Path]) -> Iterator[Sequence[Any]]:
        seen: Counter[tuple[str, str]] = Counter()
        for when, _, sender, _, talker, content in self._cells(skip=files is self.files, files=files):
            n = seen[talker, when]
            seen[talker, when] += 1
            yield when, sender, talker, content, n

    def _mapper(self, source: str, self_wxid: str) -> RowMapper:
        return partial(message_from_csv, source=source, self_wxid=self_wxid, tz=self.tz)
