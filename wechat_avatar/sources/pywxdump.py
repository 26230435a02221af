"""PyWxDump's CSV and JSON exports of the PC 3.x database, with their users.json (reference §5.2).

Files `<chat>_<start>_<end>.csv` (or `.json`), found by their columns
`id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime`. PyWxDump keeps a
Chinese label instead of the type and an already rendered `msg`; the reader maps the label
back to (type, subtype) and rebuilds what the renderer reads from `msg` where it survived.
`CreateTime` is local time (--timezone). Source key `pywxdump:<wxid>`, source_id = MsgSvrID
(the same server id as every other source), or `<room>:<id>` where it is 0.

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

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.config import RenderConfig
from wechat_avatar.errors import SourceFormatError, UsageError
from wechat_avatar.sources import rebuild
from wechat_avatar.sources.base import BadRecord, ChunkRows, Hints, RowMapper
from wechat_avatar.sources.textfile import CsvFile, common_folder, count_lines, local_ms
from wechat_avatar.staging import Prepared

COLUMNS = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime")
SYSTEM_TYPES = frozenset({10000, 10002})
NO_SENDER = frozenset({"", "未知", "系统", "我"})  # PyWxDump's stand-ins where it had no wxid
_FILE = re.compile(r"^(.+)_\d+_\d+\.(?:csv|json)$")
_LINK = re.compile(r'<a href="(.*?)">')
_QUOTE = re.compile(r"^(.*)\n\n\[引用\]\((.*?)\)(.*?):(.*)$", re.DOTALL)
_TRANSFER = re.compile(r"^(已收款|转账)：(.*)\n转账说明：(.*)\n转账时间：", re.DOTALL)
_PLACE = re.compile(r"纬度:【(.*?)】 经度:【(.*?)】\n位置：(.*?)(?: (\S*))?\n")
_CALL = re.compile(r"^语音/视频通话\[(.*)\]$", re.DOTALL)
BROKEN_ROW = "wrong number of CSV fields"
GBK_NOTE = "{} lines were not UTF-8 and were read as GBK"
# messages per worker task: PyWxDump's files hold at most 5000 and each task has a fixed
# cost (an ADBC database, the hand-over), so a worker takes a few files at a time
CHUNK_ROWS = 20_000

# pywxdump/db/utils/common_utils.py::type_converter, read backwards
LABELS: dict[str, tuple[int, int]] = {
    "文本": (1, 0), "图片": (3, 0), "语音": (34, 0), "添加好友": (37, 0), "推荐公众号": (42, 0), "视频": (43, 0),
    "动画表情": (47, 0), "位置": (48, 0), "文件": (49, 6), "粘贴的文本": (49, 1), "(分享)音乐": (49, 3),
    "(分享)卡片式链接": (49, 5), "游戏相关": (49, 7), "用户上传的GIF表情": (49, 8), "未知-49,15": (49, 15),
    "位置共享": (49, 17), "合并转发的聊天记录": (49, 19), "(分享)笔记": (49, 24), "(分享)小程序": (49, 33),
    "(分享)收藏夹": (49, 40), "(分享)小说(猜)": (49, 44), "(分享)视频号名片": (49, 50), "(分享)视频号视频": (49, 51),
    "接龙": (49, 53), "引用回复": (49, 57), "视频号直播或直播回放": (49, 63), "文件(猜)": (49, 74), "群公告": (49, 87),
    "视频号直播或直播回放等": (49, 88), "转账": (49, 2000), "赠送红包封面": (49, 2003), "语音通话": (50, 0),
    "企业微信打招呼(猜)": (65, 0), "企业微信添加好友(猜)": (66, 0), "系统通知": (10000, 0), "消息撤回1": (10000, 1),
    "拍一拍": (10000, 4), "消息撤回5": (10000, 5), "消息撤回6": (10000, 6), "消息撤回33": (10000, 33),
    "消息撤回36": (10000, 36), "消息撤回57": (10000, 57), "邀请加群": (10000, 8000), "未知-11000,0": (11000, 0),
}  # fmt: skip


def content_from_msg(base: int, sub: int, msg: str) -> str:
    """Rebuild the payload from PyWxDump's rendering of it (see the module docstring)."""
    if base == 48 and (m := _PLACE.search(msg)):
        return rebuild.location(m[3], m[4] or "", m[1], m[2])
    if base == 50 and (m := _CALL.match(msg)):
        return m[1]
    if base != 49:
        return msg  # text, system lines, raw XML (cards, friend requests), or a placeholder word
    if sub == 57 and (m := _QUOTE.match(msg)):
        return rebuild.quote(m[1], m[3], m[4])
    if sub == 2000 and (m := _TRANSFER.match(msg)):
        return rebuild.transfer(m[2], m[3], 3 if m[1] == "已收款" else 1)
    lines = msg.split("\n")
    if sub == 5 and len(lines) >= 2:
        url = _LINK.search(msg)
        return rebuild.appmsg(5, lines[0], des=lines[1], url=url[1] if url else "")
    if sub == 19 and len(lines) >= 2 and msg != "合并转发的聊天记录":
        return rebuild.appmsg(19, lines[0], des="\n".join(lines[1:]))
    return rebuild.bare_appmsg(sub)  # only the label survived


def message_from_row(row: Sequence[Any], source: str, self_wxid: str, tz: str) -> Message:
    """One export row, columns in COLUMNS order -> Message (raises BadRecord)."""
    rid, svrid, label, is_sender, talker, room, msg, _, created = row
    if not room:
        raise BadRecord("no room_name")
    base, sub = LABELS.get(label, (0, 0))  # "未知": PyWxDump did not know the type either
    server = str(svrid).strip()
    server_id = int(server) if server.isdigit() and int(server) else None
    is_self = str(is_sender).strip() == "1"
    msg = "" if msg is None else str(msg)
    if base in SYSTEM_TYPES:
        sender = ""
    elif is_self:
        sender = self_wxid
    elif talker not in NO_SENDER:
        sender = str(talker)
    else:
        sender = "" if room.endswith("@chatroom") else room
    content = content_from_msg(base, sub, msg)
    sid = str(server_id) if server_id else f"{room}:{rid}"
    return Message(source, sid, room, sender, is_self, local_ms(str(created), tz), base, sub, content, None, server_id)


def contact_from_user(user: dict[str, Any], self_wxid: str, private: set[str]) -> Contact:
    """A users.json entry -> Contact; only chats with a file of their own are known friends."""
    wxid = str(user.get("wxid") or "")
    kind = ContactKind.SELF if wxid == self_wxid else contact_kind(wxid, is_friend=wxid in private)
    return Contact(wxid=wxid, nickname=str(user.get("nickname") or ""), remark=str(user.get("remark") or ""),
                   alias=str(user.get("account") or ""), kind=kind)  # fmt: skip


class PyWxDumpExport:
    """Every PyWxDump message file found (CSV or JSON) and the users.json files beside them."""

    kind = "pywxdump"

    def __init__(self, files: list[Path], users: list[Path], hints: Hints) -> None:
        self.files, self.path, self.tz = sorted(files), common_folder(files), hints.timezone
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        self._csv: list[CsvFile] = []
        self._size: dict[Path, int] | None = None
        self.users: dict[str, dict[str, Any]] = {}
        for path in users:
            self.users.update(_load_json(path) or {})
        if self.count() == 0:
            hint = "export the chat again; PyWxDump writes a header even for an empty chat"
            raise SourceFormatError(f"the PyWxDump export in {self.path} holds no messages", hint=hint)
        wxid = hints.self_wxid or self._own_wxid() or hints.account()
        if not wxid:
            raise UsageError("this PyWxDump export names you only as '我'", hint="pass --self wxid_… (your wxid)")
        self.self_wxid = wxid

    @property
    def source_key(self) -> str:
        return f"pywxdump:{self.self_wxid}"

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

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ExportFiles:
    """A few message files, read whole in a worker process (a Chunk): their rows as `rows()` gives them."""

    paths: tuple[Path, ...]
    source: str
    self_wxid: str
    tz: str

    def stage(self, cfg: RenderConfig, scratch: Path) -> Prepared | None:
        """The files mapped column-wise in Arrow where they can be (see pywxdump_stage)."""
        from wechat_avatar.sources.pywxdump_stage import stage_files  # it imports this module

        return stage_files(self.paths, self.source, self.self_wxid, self.tz, cfg, scratch)

    def read(self) -> ChunkRows:
        tables: list[CsvFile] = []
        rows = [row for path in self.paths for row in _file_rows(path, tables)]
        good = [row for row in rows if row]
        gbk = sum(t.gbk_lines for t in tables)
        broken = len(rows) - len(good)
        return ChunkRows(good, Counter({BROKEN_ROW: broken} if broken else {}),
                         Counter({GBK_NOTE: gbk} if gbk else {}))  # fmt: skip


def _file_rows(path: Path, tables: list[CsvFile]) -> Iterator[Sequence[Any]]:
    """One message file's rows in COLUMNS order; () for a row that cannot be (wrong width)."""
    if path.suffix == ".json":
        for item in _load_json(path) or []:
            yield tuple(item.get(c, "") for c in COLUMNS) if isinstance(item, dict) else ()
        return
    table = CsvFile(path)
    tables.append(table)
    pick = itemgetter(*(table.header.index(c) for c in COLUMNS))
    width = len(table.header)
    for cells in table.rows():
        yield pick(cells) if len(cells) == width else ()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SourceFormatError(f"{path.name} is not readable JSON: {err}") from err


def _json_count(path: Path) -> int:
    return path.read_bytes().count(b'"MsgSvrID"')
