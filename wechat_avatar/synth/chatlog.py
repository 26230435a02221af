"""Write the synthetic history as saved chatlog (sjzar/chatlog) API answers (reference §5.4).

    json/<talker>.json   GET /api/v1/chatlog?talker=…&format=json: the messages as 4.x data gives them
    csv/<talker>.csv     …&format=csv: Time,SenderName,Sender,TalkerName,Talker,Content

chatlog parses each payload (model.Message.ParseMediaInfo): text keeps its words, most
other kinds keep a few `contents` fields, and the CSV holds only PlainTextContent():

    4.x row: local_type=244813135921 content="wxid_a:\\n<msg><appmsg><title>我没问我爸</title><type>57</type>…"
    -> {"seq": 1687360045123, "time": "2023-06-21T23:07:25+08:00", "talker": "123@chatroom", "isChatRoom": true,
        "sender": "wxid_a", "isSelf": false, "type": 49, "subType": 57, "content": "我没问我爸",
        "contents": {"refer": {"type": 1, "senderName": "??", "content": "我妈说可以", …}}, …}
    -> CSV: 2023-06-21 23:07:25,胡三行,wxid_a,开黑群,123@chatroom,
            "> ??(wxid_b) 06-21 23:06:40\\n> 我妈说可以\\n我没问我爸"
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.kinds import WIRE_TYPE
from wechat_avatar.synth.pc import LOCAL, SYSTEM_TYPES, attr, display, field, local_time, names, pc_content, xml_root
from wechat_avatar.synth.persona import Cast

HOST = "127.0.0.1:5030"
CSV_HEADER = ("Time", "SenderName", "Sender", "TalkerName", "Talker", "Content")
# PlainTextContent() for the appmsg types that print a fixed tag
_TAGS = {8: "[GIF表情]", 63: "[视频号]", 87: "[群公告]", 2001: "[红包]", 2003: "[红包封面]"}


def write_chatlog(out: Path, cast: Cast, events: Iterable[Event]) -> Path:
    known = names(cast)
    known[cast.me.wxid] = ("", cast.me.nickname, cast.me.alias)
    groups = {g.wxid: g for g in cast.groups}
    (out / "json").mkdir(parents=True, exist_ok=True)
    (out / "csv").mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[IO[str], IO[str], Any]] = {}
    try:
        for event in events:
            first = event.talker not in files
            if first:
                files[event.talker] = _open(out, event.talker)
            js, _, writer = files[event.talker]
            if not first:
                js.write(",")
            group = groups.get(event.talker)
            nick = group.nicks.get(event.sender, "") if group else ""
            speaker = event.sender if event.member_count or event.is_send else event.talker
            message = chatlog_message(event, nick or display(known, speaker), display(known, event.talker))
            js.write("\n  " + json.dumps(message, ensure_ascii=False))
            writer.writerow(csv_row(message))
    finally:
        for js, fh, _ in files.values():
            js.write("\n]\n")
            js.close()
            fh.close()
    return out


def _open(out: Path, talker: str) -> tuple[IO[str], IO[str], Any]:
    js = (out / "json" / f"{talker}.json").open("w", encoding="utf-8")
    js.write("[")
    fh = (out / "csv" / f"{talker}.csv").open("w", encoding="utf-8", newline="")
    writer = csv.writer(fh)
    writer.writerow(CSV_HEADER)
    return js, fh, writer


def chatlog_message(e: Event, sender_name: str, talker_name: str) -> dict[str, Any]:
    base, sub = WIRE_TYPE[e.kind]
    content = pc_content(e)
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    message: dict[str, Any] = {
        "seq": e.created_ms,
        "time": datetime.fromtimestamp(e.created_ms // 1000, UTC).astimezone(LOCAL).isoformat(),
        "talker": e.talker, "talkerName": talker_name, "isChatRoom": bool(e.member_count),
        "sender": e.sender if e.member_count or e.is_send else e.talker, "senderName": sender_name,
        "isSelf": e.is_send,
        "type": base, "subType": sub, "content": "",
    }  # fmt: skip
    if base == 1:
        message["content"] = content
    elif base in SYSTEM_TYPES:
        message.update(sender="系统消息", senderName="", content=content)
    else:
        contents = media_contents(e, message, xml_root(content))
        if contents:
            message["contents"] = contents
    return message


def media_contents(e: Event, message: dict[str, Any], root: Any) -> dict[str, Any]:
    """What ParseMediaInfo keeps of a payload (it may also set content and sender)."""
    base, sub = message["type"], message["subType"]
    if base == 3:
        return {"md5": attr(root, "img", "md5")}
    if base == 34:
        return {"voice": str(e.server_id)}
    if base == 43:
        return {"md5": attr(root, "videomsg", "md5")}
    if base != 49 or root is None or root.find("appmsg") is None:
        return {}
    title, url = field(root, "appmsg/title"), field(root, "appmsg/url")
    if sub == 57:
        message["content"] = title
        ref = "appmsg/refermsg/"
        when = datetime.fromtimestamp(int(field(root, ref + "createtime") or 0), UTC).astimezone(LOCAL)
        refer = {"seq": 0, "time": when.isoformat(), "talker": "", "talkerName": "", "isChatRoom": False,
                 "sender": field(root, ref + "fromusr"), "senderName": field(root, ref + "displayname"),
                 "isSelf": False, "type": int(field(root, ref + "type") or 1), "subType": 0,
                 "content": field(root, ref + "content")}  # fmt: skip
        return {"refer": refer}
    if sub == 62:
        record = "appmsg/patMsg/records/record/"
        message.update(sender=field(root, record + "fromUser"), content=field(root, record + "templete"))
        return {}
    if sub == 2000:
        pay = "appmsg/wcpayinfo/"
        kind = {"1": "发送 ", "7": "发送 ", "3": "接收 ", "5": "接收 ", "4": "退还 "}.get(
            field(root, pay + "paysubtype"), ""
        )
        memo = field(root, pay + "pay_memo")
        message["content"] = f"[转账|{kind}{field(root, pay + 'feedesc')}]" + (f"({memo})" if memo else "")
        return {}
    fields = {
        4: {"title": title, "desc": field(root, "appmsg/des"), "url": url},
        5: {"title": title, "url": url},
        6: {"title": title, "md5": field(root, "appmsg/md5")},
        19: {"title": title, "desc": field(root, "appmsg/des")},
        33: {"title": field(root, "appmsg/sourcedisplayname"), "url": url},
        36: {"title": field(root, "appmsg/sourcedisplayname"), "url": url},
        51: {"title": field(root, "appmsg/finderFeed/desc"), "url": ""},
    }
    return fields.get(sub, {})


def csv_row(m: dict[str, Any]) -> tuple[str, ...]:
    when = datetime.fromisoformat(m["time"])
    sender = m["sender"]
    return (local_time(int(when.timestamp() * 1000)), m["senderName"], sender, m["talkerName"], m["talker"],
            plain_text(m))  # fmt: skip


def plain_text(m: dict[str, Any]) -> str:
    """model.Message.PlainTextContent()."""
    base, sub, content, c = m["type"], m["subType"], m["content"], m.get("contents", {})
    if base in (1, 10000):
        return content
    simple = {3: f"![图片](http://{HOST}/image/{c.get('md5', '')})", 34: f"[语音](http://{HOST}/voice/{c.get('voice')})",
              42: "[名片]", 43: f"![视频](http://{HOST}/video/{c.get('md5', '')})", 47: "[动画表情]",
              50: "[语音通话]"}  # fmt: skip
    if base in simple:
        return simple[base]
    if base != 49:
        return f"Type: {base} Content: {content[:120]}" + ("<...>" if len(content) > 120 else "")
    title, url = c.get("title", ""), c.get("url", "")
    if sub == 4:
        return f"[分享|{title}|{c.get('desc', '')}]({url})"
    if sub == 5:
        return f"[链接|{title}]({url})"
    if sub == 6:
        return f"[文件|{title}](http://{HOST}/file/{c.get('md5', '')})"
    if sub in (33, 36):
        return f"[小程序|{title}]({url})" if title else "[小程序]"
    if sub == 51:
        return f"[视频号|{title}]({url})" if title else "[视频号]"
    if sub == 19:
        return "[合并转发]"
    if sub == 57:
        return quote_text(m)
    if sub in (62, 2000):
        return content
    return _TAGS.get(sub, "[分享]")


def quote_text(m: dict[str, Any]) -> str:
    refer = m.get("contents", {}).get("refer")
    if refer is None:
        return f"> [引用]\n{m['content']}" if m["content"] else "[引用]"
    when = datetime.fromisoformat(refer["time"]).strftime("%m-%d %H:%M:%S")
    head = f"{refer['senderName']}({refer['sender']})" if refer["senderName"] else refer["sender"]
    lines = [head + " " + when, plain_text(refer)]
    return "".join(f"> {line}\n" for line in "\n".join(lines).split("\n") if line) + m["content"]
