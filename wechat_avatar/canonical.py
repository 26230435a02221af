"""The canonical records every source reader yields and every later stage reads.

Nothing downstream of `sources/` knows a source's own columns: only these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class ContactKind(StrEnum):
    SELF = "self"
    FRIEND = "friend"
    GROUP = "group"
    OFFICIAL = "official"  # gh_… and verified brand accounts
    OPENIM = "openim"  # WeCom contacts (…@openim)
    SYSTEM = "system"  # filehelper, weixin, fmessage, …
    STRANGER = "stranger"  # seen only as a group member


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"


SYSTEM_WXIDS = frozenset(
    {
        "filehelper",
        "weixin",
        "fmessage",
        "medianote",
        "floatbottle",
        "qqmail",
        "tmessage",
        "qmessage",
        "newsapp",
        "notifymessage",
        "brandsessionholder",
        "officialaccounts",
    }
)


def contact_kind(wxid: str, is_friend: bool = True, verified: bool = False) -> ContactKind:
    """Classify a WeChat user name by its shape (shared by every source)."""
    if wxid.endswith("@chatroom"):
        return ContactKind.GROUP
    if wxid.startswith("gh_") or verified:
        return ContactKind.OFFICIAL
    if wxid.endswith("@openim"):
        return ContactKind.OPENIM
    if wxid in SYSTEM_WXIDS:
        return ContactKind.SYSTEM
    return ContactKind.FRIEND if is_friend else ContactKind.STRANGER


@dataclass(frozen=True, slots=True)
class Contact:
    wxid: str
    nickname: str = ""
    remark: str = ""
    alias: str = ""
    kind: ContactKind = ContactKind.FRIEND

    @property
    def display_name(self) -> str:
        return self.remark or self.nickname or self.alias or self.wxid


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a group chat, with the name they use in that group (if any)."""

    chat_id: str
    wxid: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Account:
    """The exporting account: the only person the avatar clones."""

    wxid: str
    nickname: str = ""


class Message(NamedTuple):
    """One message, as read from a source, before rendering.

    `source` names the history it belongs to (e.g. ``android:wxid_me``) and
    `source_id` is unique inside it, so re-ingesting adds nothing twice. Immutable; a
    NamedTuple rather than a frozen dataclass because ingest builds one per message and
    the dataclass's __init__ costs several times more.
    """

    source: str
    source_id: str
    chat_id: str  # contact wxid or …@chatroom
    sender: str  # wxid of who sent it ("" for system messages)
    is_self: bool
    timestamp_ms: int  # UTC, milliseconds
    base_type: int  # PC/"wire" type: 1 text, 3 image, 49 appmsg, 10000 system …
    sub_type: int  # appmsg <type> for 49, else 0 (the renderer may correct it from the XML)
    content: str  # raw content, group prefix removed
    source_type: int | None = None  # the source's own type code (Android packs sub types in it)
    server_id: int | None = None  # msgSvrId when the source has one
