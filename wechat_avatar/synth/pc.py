"""What the PC clients and the export tools share: the payload as a PC stores it, names, times.

The history's events carry the wire content; only a few kinds look different on a PC: a
voice or sticker row is XML there (Android's `wxid:ms:0` rows are phone-only), and PC 3.x
keeps a call as a status code plus its bubble text in DisplayContent.

    pc_content(Event(kind="voice", sender="wxid_a", content="wxid_a:4312:0\\n", …))
    -> '<msg><voicemsg endflag="1" … voicelength="4312" … fromusername="wxid_a" /></msg>'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.persona import Cast
from wechat_avatar.synth.tables import person_contact, rcontact_rows
from wechat_avatar.synth.timeline import TZ_OFFSET_S

LOCAL = timezone(timedelta(seconds=TZ_OFFSET_S))  # the persona lives in Asia/Shanghai (no DST)
_VOIP_TEXT = re.compile(r"<msg><!\[CDATA\[(.*?)\]\]></msg>")
# PC 3.x call status codes (WeChatMsg call_decompress): 11 connected, 5 cancelled, 8 rejected
_VOIP_CODE = {"已取消": "5", "对方已拒绝": "8", "对方无应答": "5"}
SYSTEM_TYPES = (10000, 10002)


def pc_content(e: Event) -> str | bytes:
    """The payload as a PC client stores it (see the module docstring)."""
    content = e.content
    if isinstance(content, bytes) or content.startswith("<"):
        return content
    if e.kind == "voice":  # "sender:ms:0\n"
        ms = content.strip().split(":")[1]
        return (
            f'<msg><voicemsg endflag="1" cancelflag="0" forwardflag="0" voiceformat="4" voicelength="{ms}" '
            f'length="{int(ms) * 2}" bufid="0" fromusername="{e.sender}" /></msg>'
        )
    if e.kind == "sticker":  # "sender:0:mine:md5::0"
        md5 = content.split(":")[3]
        return (
            f'<msg><emoji fromusername="{e.sender}" tousername="" type="2" md5="{md5}" len="{int(md5[:4], 16)}" '
            f'cdnurl="http://wxapp.tc.qq.com/262/20304/stodownload?m={md5}" width="240" height="240" /></msg>'
        )
    return content


def voip_parts(e: Event) -> tuple[str, str]:
    """PC 3.x keeps a call as (StrContent status code, DisplayContent bubble text)."""
    match = _VOIP_TEXT.search(e.content if isinstance(e.content, str) else "")
    text = match[1] if match else ""
    return _VOIP_CODE.get(text, "11"), text


def contact_rows(cast: Cast) -> list[tuple]:
    """The phone's rcontact rows plus the group members it has none for: a PC keeps every member
    of a group you are in as a contact (PC 3.x Reserved1 = 0, 4.x local_type = 3)."""
    members = {wxid for group in cast.groups for wxid in group.members}
    unlisted = [person_contact(p, i) for i, p in enumerate(cast.strangers) if not p.listed and p.wxid in members]
    return rcontact_rows(cast) + [(row[0], "", *row[2:]) for row in unlisted]  # an alias only friends see


def local_time(ms: int) -> str:
    """'2023-06-21 23:07:25': how the export tools print a time (the exporting PC's zone)."""
    return datetime.fromtimestamp(ms // 1000, UTC).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")


def names(cast: Cast) -> dict[str, tuple[str, str, str]]:
    """wxid -> (remark, nickname, alias) for everyone the phone has a contact row for, and strangers."""
    known = {row[0]: (row[2], row[4], row[1]) for row in rcontact_rows(cast)}
    for person in cast.strangers:
        known.setdefault(person.wxid, ("", person.nickname, person.alias))
    return known


def display(known: dict[str, tuple[str, str, str]], wxid: str) -> str:
    remark, nickname, alias = known.get(wxid, ("", "", ""))
    return remark or nickname or alias or wxid


def xml_root(content: str | bytes) -> etree._Element | None:
    """Parse a payload the lenient way the export tools do (lxml recover, like PyWxDump's xml2dict)."""
    if isinstance(content, bytes) or "<" not in content:
        return None
    text = content[content.find("<") :]
    if text.startswith("<?xml"):
        text = text[text.find("?>") + 2 :].lstrip()
    try:
        return etree.fromstring(text.encode(), etree.XMLParser(recover=True, resolve_entities=False))
    except etree.XMLSyntaxError:
        return None


def field(root: etree._Element | None, path: str) -> str:
    if root is None:
        return ""
    found = root.find(path)
    return (found.text or "").strip() if found is not None else ""


def attr(root: etree._Element | None, path: str, name: str) -> str:
    found = root.find(path) if root is not None else None
    return found.get(name, "") if found is not None else ""
