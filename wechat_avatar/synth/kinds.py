"""Synthetic message kinds -> the Android `message.type` code they are stored under (§1.4).

A kind is finer than a type code: links, bilibili shares, chat records, mini programs and
music all share Android type 49 but differ in `<appmsg><type>`.
"""

from __future__ import annotations

ANDROID_TYPE = {
    "text": 1,
    "image": 3,
    "voice": 34,
    "friend_request": 37,
    "card": 42,
    "video": 43,
    "sticker": 47,
    "location": 48,
    "link": 49,  # appmsg 5
    "bili": 49,  # appmsg 4
    "record": 49,  # appmsg 19
    "mini": 49,  # appmsg 33
    "music": 49,  # appmsg 3
    "malformed": 49,  # broken XML on purpose
    "voip": 50,
    "system": 10000,
    "revoke": 10000,
    "revoke_old": 268445456,
    "article": 285212721,  # official-account mmreader push (0x11000031: base type 49)
    "transfer": 419430449,
    "redpacket": 436207665,
    "channels": 754974769,
    "quote": 822083633,
    "pat": 922746929,
    "file": 1090519089,
    "announcement": 1107296305,
    "unknown": 999999,
    "bad_utf8": 1,  # a text row whose bytes are not UTF-8 (stored as a BLOB)
}

# No "<wxid>:\n" prefix in groups and no sender: WeChat writes these itself (base type 10000).
# A pat (922746929) is an appmsg from the patter, so in groups it carries the prefix like any other.
SYSTEM_KINDS = frozenset({"system", "revoke", "revoke_old"})

# Deliberately odd rows (≤ 0.1 %): the reader must survive them.
ODD_KINDS = ("unknown", "malformed", "bad_utf8")
ODD_NAMES = {"unknown": "unknown_type", "malformed": "malformed_xml", "bad_utf8": "invalid_utf8"}

# What a turn that is not plain text becomes, with base weights (private chats).
MEDIA_WEIGHTS = {
    "image": 30,
    "sticker": 16,
    "voice": 14,
    "video": 5,
    "link": 7,
    "bili": 3,
    "location": 1.5,
    "card": 1,
    "file": 2,
    "transfer": 1.5,
    "redpacket": 1.5,
    "record": 1.5,
    "mini": 2,
    "music": 1,
    "channels": 2.5,
    "voip": 3,
    "pat": 2,
}
GROUP_ONLY = frozenset({"announcement"})
PRIVATE_ONLY = frozenset({"voip", "transfer"})

# Topic -> kinds it makes more likely (food talk brings photos and places …).
TOPIC_BOOST = {
    "food": {"image": 2, "location": 4, "mini": 2},
    "game": {"voip": 2, "bili": 2, "mini": 1.5},
    "work": {"file": 5, "record": 3},
    "money": {"transfer": 15, "redpacket": 5},
    "meme": {"link": 4, "bili": 4, "channels": 4, "image": 2},
    "weekend": {"location": 4, "image": 1.5},
}


def media_table(topic: str, group: bool) -> tuple[list[str], list[float]]:
    """(kinds, cumulative weights) for random.choices, precomputed once per topic."""
    boost = TOPIC_BOOST.get(topic, {})
    kinds = [k for k in MEDIA_WEIGHTS if not (group and k in PRIVATE_ONLY)]
    total, cum = 0.0, []
    for kind in kinds:
        total += MEDIA_WEIGHTS[kind] * boost.get(kind, 1)
        cum.append(total)
    return kinds, cum


# The same kinds in PC/"wire" numbering (reference §4): PC 3.x `Type`/`SubType`, 4.x
# `local_type`, and the exports' type columns. Android's packed codes map to these pairs too
# (sources/android.py), so every format renders each message the same way.
WIRE_TYPE = {
    "text": (1, 0),
    "image": (3, 0),
    "voice": (34, 0),
    "friend_request": (37, 0),
    "card": (42, 0),
    "video": (43, 0),
    "sticker": (47, 0),
    "location": (48, 0),
    "link": (49, 5),
    "bili": (49, 4),
    "record": (49, 19),
    "mini": (49, 33),
    "music": (49, 3),
    "malformed": (49, 5),
    "voip": (50, 0),
    "system": (10000, 0),
    "revoke": (10000, 0),
    "revoke_old": (10000, 0),
    "article": (49, 5),
    "transfer": (49, 2000),
    "redpacket": (49, 2001),
    "channels": (49, 51),
    "quote": (49, 57),
    "pat": (49, 62),
    "file": (49, 6),
    "announcement": (49, 87),
    "unknown": (999999 & 0xFFFF, 0),  # what Android's unknown code reads as: nobody knows it either way
    "bad_utf8": (1, 0),
}
