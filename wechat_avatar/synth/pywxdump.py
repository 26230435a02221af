"""Write the synthetic history as PyWxDump's CSV export of the PC 3.x database (reference §5.2).

    <chat>/<chat>_0_<n+1>.csv     one folder per chat; pages of 5000 rows (<chat>_0_5000.csv, …)
    <chat>/users.json             {wxid: {wxid, nickname, remark, account, …}} for the chat's speakers

Each row is what `dbMSG.get_msg_detail` makes of the PC 3.x row: a Chinese type label and
an already rendered `msg`, so the CSV keeps far less than the database:

    MSG(Type=49, SubType=57, CompressContent=lz4(<msg>…<title>我没问我爸</title>…<displayname>??</displayname>
        <content>我妈说可以</content><createtime>1687360000</createtime>…))
    -> id=7, MsgSvrID="77310", type_name="引用回复", is_sender=0, talker="wxid_a", room_name="123@chatroom",
       msg="我没问我爸\\n\\n[引用](2023-06-21 23:06:40)??:我妈说可以", src="", CreateTime="2023-06-21 23:07:25"
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.kinds import WIRE_TYPE
from wechat_avatar.synth.pc import SYSTEM_TYPES, attr, field, local_time, names, pc_content, voip_parts, xml_root
from wechat_avatar.synth.persona import Cast

PAGE = 5000
HEADER = ("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime")
# pywxdump/db/utils/common_utils.py::type_converter, the labels our history needs
LABELS = {
    (1, 0): "文本", (3, 0): "图片", (34, 0): "语音", (37, 0): "添加好友", (42, 0): "推荐公众号", (43, 0): "视频",
    (47, 0): "动画表情", (48, 0): "位置", (49, 3): "(分享)音乐", (49, 4): "(分享)卡片式链接",
    (49, 5): "(分享)卡片式链接", (49, 6): "文件", (49, 19): "合并转发的聊天记录", (49, 33): "(分享)小程序",
    (49, 51): "(分享)视频号视频", (49, 57): "引用回复", (49, 87): "群公告", (49, 2000): "转账", (50, 0): "语音通话",
    (10000, 0): "系统通知",
}  # fmt: skip


def write_pywxdump(out: Path, cast: Cast, events: Iterable[Event]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    known = names(cast)
    chats: dict[str, _Chat] = {}
    for event in events:
        chat = chats.get(event.talker)
        if chat is None:
            chat = chats[event.talker] = _Chat(out / event.talker, event.talker)
        chat.write(event, cast.me.wxid)
    for chat in chats.values():
        chat.close(known)
    return out


class _Chat:
    """One chat's folder: its CSV pages, written as the messages arrive, and its speakers."""

    def __init__(self, folder: Path, talker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.talker, self.count = folder, talker, 0
        self.speakers: set[str] = set()
        self.fh: IO[str] | None = None
        self.writer: Any = None

    def write(self, e: Event, me: str) -> None:
        if self.count % PAGE == 0:
            self._next_page()
        self.count += 1
        row = pywxdump_row(e, self.count, me)
        self.writer.writerow(row)
        if row[4] not in ("未知", "我"):
            self.speakers.add(row[4])

    def _next_page(self) -> None:
        if self.fh is not None:
            self.fh.close()
        name = f"{self.talker}_{self.count}_{self.count + PAGE}.csv"
        self.fh = (self.folder / name).open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.fh, quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(HEADER)

    def close(self, known: dict[str, tuple[str, str, str]]) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.count < PAGE:  # a chat that fits one page is exported with page_size = count + 1
            (self.folder / f"{self.talker}_0_{PAGE}.csv").rename(self.folder / f"{self.talker}_0_{self.count + 1}.csv")
        users = {w: user(w, known) for w in sorted(self.speakers)}
        (self.folder / "users.json").write_text(json.dumps(users, ensure_ascii=False, indent=4), encoding="utf-8")


def user(wxid: str, known: dict[str, tuple[str, str, str]]) -> dict[str, object]:
    remark, nickname, alias = known.get(wxid, ("", wxid, ""))
    return {"wxid": wxid, "nickname": nickname, "remark": remark, "account": alias, "describe": "",
            "headImgUrl": "", "ExtraBuf": None, "LabelIDList": []}  # fmt: skip


def pywxdump_row(e: Event, n: int, me: str) -> tuple:
    base, sub = WIRE_TYPE[e.kind]
    if e.is_send:
        talker = me  # newer PyWxDump writes the account's wxid; older ones "我"
    elif e.member_count:
        talker = e.sender if base not in SYSTEM_TYPES else "未知"  # BytesExtra has no sender for those
    else:
        talker = e.talker
    msg, src = message_text(e, base, sub)
    return (n, str(e.server_id), LABELS.get((base, sub), "未知"), int(e.is_send), talker, e.talker, msg, src,
            local_time(e.created_ms))  # fmt: skip


def message_text(e: Event, base: int, sub: int) -> tuple[str, str]:
    """(msg, src) as get_msg_detail renders them."""
    content = pc_content(e)
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    root = xml_root(content) if base != 1 else None
    if base == 3:
        return "图片", f"FileStorage/MsgAttach/{e.talker}/Image/{local_time(e.created_ms)[:7]}/{e.server_id}.dat"
    if base == 34:
        length = attr(root, "voicemsg", "voicelength")
        return f"语音时长：{int(length) / 1000:.2f}秒", f"audio/{e.talker}/{e.server_id}.wav"
    if base == 43:
        return "视频", f"FileStorage/Video/{local_time(e.created_ms)[:7]}/{e.server_id}.mp4"
    if base == 47:
        return "表情", attr(root, "emoji", "cdnurl")
    if base == 48:
        return location_text(root), ""
    if base == 49:
        return appmsg_text(root, sub, LABELS.get((base, sub), "未知"))
    if base == 50:
        return f"语音/视频通话[{voip_parts(e)[1]}]", ""
    return content, ""


def location_text(root: object) -> str:
    x, y = attr(root, "location", "x"), attr(root, "location", "y")
    label, poi = attr(root, "location", "label"), attr(root, "location", "poiname")
    rest = {"scale": attr(root, "location", "scale"), "maptype": attr(root, "location", "maptype")}
    return f"纬度:【{x}】 经度:【{y}】\n位置：{label} {poi}\n其他信息：{json.dumps(rest, ensure_ascii=False, indent=4)}"


def appmsg_text(root: object, sub: int, label: str) -> tuple[str, str]:
    title, des, url = field(root, "appmsg/title"), field(root, "appmsg/des"), field(root, "appmsg/url")
    if sub == 5:
        return f'{title}\n{des}\n\n<a href="{url}">点击查看详情</a>', url
    if sub == 19:
        return f"{title}\n{des}", ""
    if sub == 57:
        when = local_time(int(field(root, "appmsg/refermsg/createtime") or 0) * 1000)
        name, quoted = field(root, "appmsg/refermsg/displayname"), field(root, "appmsg/refermsg/content")
        return f"{title}\n\n[引用]({when}){name}:{quoted}", ""
    if sub == 2000:
        pay = "appmsg/wcpayinfo/"
        kind = "已收款" if field(root, pay + "paysubtype") == "3" else "转账"
        begin = local_time(int(field(root, pay + "begintransfertime") or 0) * 1000)
        return (
            f"{kind}：{field(root, pay + 'feedesc')}\n转账说明：{field(root, pay + 'pay_memo')}\n转账时间：{begin}\n",
            "",
        )
    return label, ""  # every other appmsg: only its label survives
