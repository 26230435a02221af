"""Rows of the small tables (rcontact, userinfo, chatroom): tiny pure mappers from the cast.

Example (rcontact, a friend with a remark):
    ("wxid_2tunsuqz1y1922", "", "驾校周师傅", "", "周师傅", "ZSF", "zhoushifu", 0, 3, 0, …,
     "jiaxiaozhoushifu", "JXZSF", <lvbuff>, 0, "v3_…@stranger", 0, 0, …)
"""

from __future__ import annotations

import blackboxprotobuf

from wechat_avatar.synth.persona import Cast, Group, Person
from wechat_avatar.synth.timeline import START_S

# roomdata: repeated field 1 = member {1: wxid, 2: in-group nickname (absent if none), 3: state}
ROOMDATA_TYPEDEF = {
    "1": {
        "type": "message",
        "seen_repeated": True,
        "message_typedef": {"1": {"type": "string"}, "2": {"type": "string"}, "3": {"type": "int"}},
    },
}
_LVBUFF = bytes.fromhex("7b000000000000000000") + "中国 上海".encode() + b"\x7d"
_SYSTEM = (
    ("filehelper", "文件传输助手", "wen jian chuan shu zhu shou"),
    ("fmessage", "朋友推荐消息", "peng you tui jian xiao xi"),
    ("weixin", "微信团队", "wei xin tuan dui"),
)


def quan_pin(pinyin: str) -> str:
    return pinyin.replace(" ", "").lower()


def py_initial(name: str, pinyin: str) -> str:
    """Upper-case initials of the syllables; an all-ASCII name is kept whole, like WeChat."""
    if name.isascii():
        return name.upper()
    return "".join(syllable[0] for syllable in pinyin.split()).upper()


def _contact(
    username: str,
    nickname: str,
    pinyin: str,
    *,
    alias: str = "",
    remark: str = "",
    remark_pinyin: str = "",
    rtype: int = 3,
    verify: int = 0,
    encrypt: str = "",
) -> tuple:
    """One rcontact row in schema.RCONTACT column order."""
    remark_full = quan_pin(remark_pinyin) if remark else ""
    remark_short = py_initial(remark, remark_pinyin) if remark else ""
    return (
        username,
        alias,
        remark,
        "",
        nickname,
        py_initial(nickname, pinyin),
        quan_pin(pinyin),
        0,
        rtype,
        0,
        0,
        "",
        remark_full,
        remark_short,
        _LVBUFF,
        verify,
        encrypt,
        0,
        0,
        "",
        "",
        None,
        None,
        "",
        0,
        None,
        0,
    )


def person_contact(p: Person, i: int) -> tuple:
    encrypt = f"v3_020b3826fd03010000000000{i:04d}a1b2c3d4e5f6@stranger" if p.rtype & 1 else ""
    return _contact(
        p.wxid,
        p.nickname,
        p.pinyin,
        alias=p.alias,
        remark=p.remark,
        remark_pinyin=p.remark_pinyin,
        rtype=p.rtype,
        encrypt=encrypt,
    )


def rcontact_rows(cast: Cast) -> list[tuple]:
    """Same order as history.rcontact_order: the 1-based row number is message.talkerId."""
    me = cast.me
    rows = [_contact(me.wxid, me.nickname, me.pinyin, alias=me.alias)]
    rows += [_contact(wxid, name, py) for wxid, name, py in _SYSTEM]
    rows += [person_contact(p, i) for i, p in enumerate(cast.friends)]
    rows += [person_contact(p, i) for i, p in enumerate(cast.strangers) if p.listed]
    rows += [_contact(g.wxid, g.name, g.pinyin, rtype=3) for g in cast.groups]
    rows += [_contact(o.wxid, o.nickname, o.pinyin, verify=o.verify_flag) for o in cast.officials]
    return rows


def userinfo_rows(cast: Cast, uin: str) -> list[tuple]:
    """(id, type, value): type 3 = string, 1 = int. id 2 = own wxid, 4 = own nickname."""
    return [
        (2, 3, cast.me.wxid),
        (4, 3, cast.me.nickname),
        (5, 3, cast.email),
        (6, 3, cast.phone),
        (9, 1, uin),
        (42, 3, cast.me.alias),
        (12291, 3, "干饭 打游戏 睡觉"),
        (12293, 3, "上海"),
    ]


def roomdata(group: Group) -> bytes:
    members = []
    for wxid in group.members:
        member: dict[str, object] = {"1": wxid, "3": 0}
        if wxid in group.nicks:
            member["2"] = group.nicks[wxid]
        members.append(member)
    return bytes(blackboxprotobuf.encode_message({"1": members}, ROOMDATA_TYPEDEF))


def chatroom_row(cast: Cast, group: Group, index: int) -> tuple:
    """`memberlist` is ;-separated wxids, `displayname` the contact nicknames joined by 、 in the
    same order; per-group nicknames exist only inside `roomdata`."""
    names = [cast.me.nickname if w == cast.me.wxid else cast.people[w].nickname for w in group.members]
    added_ms = (START_S - 86400 * (30 + 97 * index)) * 1000
    notice = "群里禁止发广告，违者踢出" if index % 2 == 0 else ""
    return (
        group.wxid,
        added_ms,
        ";".join(group.members),
        "、".join(names),
        group.name,
        0,
        group.owner,
        roomdata(group),
        1,
        group.nicks.get(cast.me.wxid, ""),
        0,
        0,
        added_ms,
        notice,
        3 + index,
        group.owner if notice else "",
        added_ms // 1000 if notice else 0,
        0,
        3 + index,
        0,
        len(group.members),
    )


def chatroom_rows(cast: Cast) -> list[tuple]:
    return [chatroom_row(cast, g, i) for i, g in enumerate(cast.groups)]
