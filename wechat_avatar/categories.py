"""The message categories every renderer sorts messages into, with the seed's placeholders.

A leaf module: the config validates category names against it and the renderer fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    name: str  # e.g. "image"
    placeholder: str  # default text, or the prefix before a title; "" where the text is the content
    doc: str  # one line: what it is and how it renders


def _categories(*rows: tuple[str, str, str]) -> dict[str, Category]:
    return {name: Category(name, placeholder, doc) for name, placeholder, doc in rows}


CATEGORIES: dict[str, Category] = _categories(
    ("text", "", "plain text (1), kept as typed: smiley codes like [捂脸] stay"),
    ("quote", "", "quote reply (49/57): the new text; `quote` holds 'name: quoted text'"),
    ("link", "[外部链接]", "link card, article or video link (49/4, 49/5): placeholder + title"),
    ("image", "[手机图片]", "image (3) or image shared from an app (49/2)"),
    ("sticker", "[表情包]", "sticker (47, Android 'wxid:0:1:md5::0' or <emoji> XML) or GIF (49/8)"),
    ("transfer", "[微信转账]", "money transfer (49/2000, 49/2011)"),
    ("announcement", "[群公告]", "group announcement (49/87)"),
    ("red_packet_taken", "[对方领取红包]", "system notice that someone opened your red packet (10000)"),
    ("card", "[名片推荐]", "contact card (42): placeholder + nickname"),
    ("voice", "[语音]", "voice message (34)"),
    ("video", "[视频]", "video (43, 62)"),
    ("location", "[位置]", "location (48): placeholder + place name (poiname, else address label)"),
    ("file", "[文件]", "file (49/6, 49/74): placeholder + file name"),
    ("music", "[音乐]", "music share (49/3, 49/76, 49/92): placeholder + title"),
    ("mini_program", "[小程序]", "mini program (49/33, 49/36): placeholder + title"),
    ("chat_record", "[聊天记录]", "merged chat record (49/19): placeholder + title"),
    ("note", "[笔记]", "note (49/24): placeholder + title"),
    ("favorite", "[收藏]", "favourites share (49/40)"),
    ("channels", "[视频号]", "Channels video or card (49/50, 49/51): placeholder + desc or nickname"),
    ("channels_live", "[视频号直播]", "Channels live stream (49/63, 49/88)"),
    ("solitaire", "", "group solitaire 接龙 (49/53): its title"),
    ("app_text", "", "text shared from an app (49/1): its title"),
    ("live_location", "[位置共享]", "live location sharing (49/17)"),
    ("red_packet", "[红包]", "red packet (49/2001, or the system text '收到红包，请在手机上查看')"),
    ("red_packet_cover", "[红包封面]", "red-packet cover gift (49/2003)"),
    ("pat", "", 'pat 拍一拍 (49/62, 10000, sysmsg pat): the sentence, e.g. \'"A" 拍了拍 "B"\''),
    ("revoke", "", "revoke notice (10000, sysmsg revokemsg): e.g. '\"X\" 撤回了一条消息'"),
    ("voip", "[语音通话]", "voice/video call (50, 64): placeholder + call text like '通话时长 00:27'"),
    ("friend_request", "[好友申请]", "friend request (37, 66): placeholder + nickname"),
    ("status_op", "[状态同步]", "status-notify operation (51), never shown in a chat"),
    ("system", "", "other system notices (10000, 10002): the notice, tags stripped"),
    ("unknown", "[未知消息]", "a type or appmsg subtype this table does not know"),
)
UNKNOWN_TEXT = "[未知消息]"
