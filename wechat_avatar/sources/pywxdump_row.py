"""One PyWxDump export row -> Message: its columns, its type labels read backwards, and the
payload rebuilt from the already rendered `msg` (see `pywxdump` for the export as a whole).

A leaf of both ways in: the reader's row path (`pywxdump`) and the column-wise one
(`pywxdump_stage`) map through these same functions, so they cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from wechat_avatar.canonical import Message
from wechat_avatar.sources import rebuild
from wechat_avatar.sources.base import BadRecord
from wechat_avatar.sources.textfile import local_ms

COLUMNS = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime")
SYSTEM_TYPES = frozenset({10000, 10002})
NO_SENDER = frozenset({"", "未知", "系统", "我"})  # PyWxDump's stand-ins where it had no wxid
_LINK = re.compile(r'<a href="(.*?)">')
_QUOTE = re.compile(r"^(.*)\n\n\[引用\]\((.*?)\)(.*?):(.*)$", re.DOTALL)
_TRANSFER = re.compile(r"^(已收款|转账)：(.*)\n转账说明：(.*)\n转账时间：", re.DOTALL)
_PLACE = re.compile(r"纬度:【(.*?)】 经度:【(.*?)】\n位置：(.*?)(?: (\S*))?\n")
_CALL = re.compile(r"^语音/视频通话\[(.*)\]$", re.DOTALL)

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
_LABEL_OF = {kind: label for label, kind in LABELS.items()}


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
    # PyWxDump writes the label where it rendered nothing; any other text is kept whole
    return rebuild.words(sub, "" if msg == _LABEL_OF.get((49, sub)) else msg)


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
