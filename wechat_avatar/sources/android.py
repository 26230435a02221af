"""Android WeChat: EnMicroMsg.db (encrypted or decrypted) and its tables.

The mappers here are pure functions from one table row to canonical records; the DB
reader below and the CSV reader (`android_csv.py`) share them, since the seed's CSVs are
the same tables. A `message` row and what it becomes::

    msgId=812 msgSvrId=77310 type=822083633 isSend=0 createTime=1687360045123
    talker=123@chatroom content="wxid_a:\\n<msg><appmsg><title>我没问我爸</title><type>57</type>…"
    -> Message(source="android:wxid_me", source_id="812", server_id=77310, chat_id="123@chatroom",
               sender="wxid_a", is_self=False, timestamp_ms=1687360045123, base_type=49,
               sub_type=57, content="<msg><appmsg>…", source_type=822083633)
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import sqlcipher3

from wechat_avatar import android_crypto
from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources.base import BadRecord, RowMapper, decode_text, roomdata_names
from wechat_avatar.staging import Stored

# Android packs the appmsg subtype into the high bits of `type`; these codes are not
# recoverable from `type & 0xFFFF` alone (reference/wechat-formats.md §1.4).
ANDROID_TYPES: dict[int, tuple[int, int]] = {
    16777265: (49, 1), 268435505: (49, 2), 1040187441: (49, 3), 1090519089: (49, 6),
    1048625: (49, 8), 335544369: (49, 10), 369098801: (49, 13), 452984881: (49, 16),
    -1879048186: (49, 17), 402653233: (49, 20), 553648177: (49, 33), 587202609: (49, 36),
    520093745: (49, 34), 771751985: (49, 50), 754974769: (49, 51), 805306417: (49, 53),
    486539313: (49, 54), 822083633: (49, 57), 922746929: (49, 62), 889192497: (49, 62),
    973078577: (49, 63), 1107296305: (49, 87), 975175729: (49, 88), 419430449: (49, 2000),
    436207665: (49, 2001), 469762097: (49, 2001), 503316529: (49, 2001), 536870961: (49, 2002),
    285212721: (49, 5),  # official-account article (mmreader)
    318767153: (10002, 0),  # template message from WeChat team / pay
    570425393: (10002, 0),  # group-invite system XML
    268445456: (10000, 0),  # revoke notice, plain text
    285222674: (10002, 0),  # revoke, folded XML
    855638065: (10000, 0), 1077936177: (10000, 0), 603979825: (10000, 0),
}  # fmt: skip
SYSTEM_BASE_TYPES = frozenset({10000, 10002})

MESSAGE_COLUMNS = ("msgId", "msgSvrId", "type", "isSend", "createTime", "talker", "content")
RCONTACT_COLUMNS = ("username", "alias", "conRemark", "nickname", "type", "verifyFlag")
USERINFO_COLUMNS = ("id", "value")
CHATROOM_COLUMNS = ("chatroomname", "memberlist", "displayname", "roomdata")

_GROUP_PREFIX = re.compile(r"([A-Za-z0-9_\-@.]+):[ \t]*\n")


def android_type(code: int) -> tuple[int, int]:
    """Packed Android `type` -> (base type, sub type); the renderer refines 49's sub type."""
    return ANDROID_TYPES.get(code) or (code & 0xFFFF, 0)


def split_group_prefix(content: str) -> tuple[str, str]:
    """`"wxid_a:\\nhello"` -> ("wxid_a", "hello"); content without a prefix -> ("", content)."""
    match = _GROUP_PREFIX.match(content)
    if not match:
        return "", content
    return match.group(1), content[match.end() :]


def _int(value: Any, column: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRecord(f"non-numeric {column}") from None


def message_from_row(row: Sequence[Any], source: str, self_wxid: str) -> Message:
    """One `message` row, columns in MESSAGE_COLUMNS order -> Message.

    Positional rather than by name: this runs once per message. Raises BadRecord for rows
    that cannot be placed.
    """
    msg_id, server_id, code, is_send, create_time, talker, content = row
    if not talker:
        raise BadRecord("no talker")
    if isinstance(talker, bytes):
        talker = decode_text(talker)[0]
    code = _int(code, "type")
    base, sub = android_type(code)
    if content.__class__ is bytes:
        try:
            content = content.decode()
        except UnicodeDecodeError:
            content = decode_text(content)[0]
    elif content is None:
        content = ""
    is_self = is_send == 1 or is_send == "1"
    if base in SYSTEM_BASE_TYPES:
        sender = ""
    elif is_self:
        sender = self_wxid
    elif talker.endswith("@chatroom"):
        sender, content = split_group_prefix(content)
    else:
        sender = talker
    return Message(
        source,
        str(msg_id),
        talker,
        sender,
        is_self,
        _int(create_time, "createTime"),
        base,
        sub,
        content,
        code,
        int(server_id) if server_id not in (None, "", 0, "0") else None,
    )


def contact_from_rcontact(row: Mapping[str, Any], self_wxid: str) -> Contact:
    wxid = row["username"] or ""
    if wxid == self_wxid:
        kind = ContactKind.SELF
    else:
        friend = _int(row["type"] or 0, "type") & 1 == 1
        kind = contact_kind(wxid, is_friend=friend, verified=str(row["verifyFlag"] or "0") != "0")
    return Contact(
        wxid=wxid,
        alias=row["alias"] or "",
        remark=row["conRemark"] or "",
        nickname=row["nickname"] or "",
        kind=kind,
    )


def members_from_chatroom(row: Mapping[str, Any]) -> list[Member]:
    """Group members, with their in-group names from `roomdata` where it decodes."""
    room = row["chatroomname"]
    names = roomdata_names(row["roomdata"])
    wxids = [w for w in (row["memberlist"] or "").split(";") if w]
    return [Member(chat_id=room, wxid=w, display_name=names.get(w, "")) for w in wxids]


def strangers_from_chatroom(row: Mapping[str, Any]) -> list[Contact]:
    """`displayname` lists members' nicknames aligned with `memberlist`: enough to name strangers."""
    wxids = [w for w in (row["memberlist"] or "").split(";") if w]
    nicks = (row["displayname"] or "").split("、")
    if len(nicks) != len(wxids):
        return []
    return [
        Contact(wxid=w, nickname=n, kind=contact_kind(w, is_friend=False)) for w, n in zip(wxids, nicks, strict=True)
    ]


def account_from_userinfo(rows: Iterable[Mapping[str, Any]], where: str) -> Account:
    values = {str(r["id"]): r["value"] for r in rows}
    wxid = values.get("2")
    if not wxid:
        raise SourceFormatError(
            f"{where}: userinfo has no id 2 (your wxid)", hint="export the userinfo table from the same database"
        )
    return Account(wxid=str(wxid), nickname=str(values.get("4") or ""))


class AndroidDb:
    """EnMicroMsg.db, opened with a verified key or as a plain (decrypted) SQLite file."""

    kind = "android-db"

    def __init__(self, path: Path, conn: sqlite3.Connection | Any, has_chatroom: bool) -> None:
        self.path = path
        self.conn = conn
        self.has_chatroom = has_chatroom
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        self._after = 0  # msgId after which rows() starts (an incremental re-ingest, see `resume`)
        self._account = account_from_userinfo(self._rows("SELECT id, value FROM userinfo"), path.name)

    @classmethod
    def open(cls, path: Path, key: str | None) -> AndroidDb:
        if key is None:
            # ingest reads from a prefetch thread (one thread at a time)
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = android_crypto.open_encrypted(path, key)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except (sqlite3.Error, sqlcipher3.Error) as err:
            conn.close()
            raise SourceFormatError(f"{path.name} is damaged or not a database: {err}") from err
        missing = {"message", "rcontact", "userinfo"} - tables
        if missing:
            conn.close()
            raise SourceFormatError(f"{path.name} is not an EnMicroMsg.db: no {', '.join(sorted(missing))} table")
        return cls(path, conn, has_chatroom="chatroom" in tables)

    @property
    def source_key(self) -> str:
        return f"android:{self._account.wxid}"

    def _rows(self, sql: str, tuples: bool = False) -> Iterator[Any]:
        cursor = self.conn.cursor()
        if not tuples:
            cursor.row_factory = sqlite3.Row if isinstance(self.conn, sqlite3.Connection) else sqlcipher3.Row
        try:
            yield from cursor.execute(sql)
        except (sqlite3.Error, sqlcipher3.Error) as err:  # two drivers, unrelated exception classes
            raise SourceFormatError(f"{self.path.name} is damaged or truncated: {err}") from err

    def account(self) -> Account:
        return self._account

    def contacts(self) -> Iterator[Contact]:
        for row in self._rows("SELECT username, alias, conRemark, nickname, type, verifyFlag FROM rcontact"):
            if row["username"]:
                yield contact_from_rcontact(row, self._account.wxid)
        if self.has_chatroom:
            for row in self._rows("SELECT chatroomname, memberlist, displayname, roomdata FROM chatroom"):
                yield from strangers_from_chatroom(row)

    def members(self) -> Iterator[Member]:
        if self.has_chatroom:
            for row in self._rows("SELECT chatroomname, memberlist, displayname, roomdata FROM chatroom"):
                yield from members_from_chatroom(row)

    def count(self) -> int:
        # msgId is the rowid: max() is one B-tree descent, count(*) would decrypt every page
        return max(0, next(self._rows("SELECT coalesce(max(msgId), 0) AS n FROM message"))["n"] - self._after)

    def resume(self, stored: Stored) -> str:
        """Read only rows after the last msgId chat.db holds: WeChat numbers them in the order it
        stores them, so a later export of the same phone holds the earlier rows under the same ids.
        Unless this database's row of that msgId is another message (WeChat reinstalled or the
        phone changed, and the ids began again): then every row is read."""
        if not stored.last_id.isdigit():
            return ""
        sql = f"SELECT talker, createTime FROM message WHERE msgId = {int(stored.last_id)}"  # one rowid lookup
        row = next(self._rows(sql, tuples=True), None)
        if row is None or (row[0], _int(row[1], "createTime")) != (stored.last_chat, stored.last_ts_ms):
            return f"msgId {stored.last_id} is another message here than in chat.db: every row was read"
        self._after = int(stored.last_id)
        return f"rows up to msgId {self._after} are in chat.db already: read from there on (--full re-reads all)"

    def rows(self) -> Iterator[Sequence[Any]]:
        # content as bytes: some real rows are not valid UTF-8, and sqlite3 would raise on them;
        # msgId is the rowid, so `msgId > after` starts there without reading the rows before
        yield from self._rows(
            "SELECT msgId, msgSvrId, type, isSend, createTime, talker, CAST(content AS BLOB) "
            f"FROM message WHERE msgId > {int(self._after)} ORDER BY msgId",
            tuples=True,
        )

    def row_mapper(self) -> RowMapper:
        return partial(message_from_row, source=self.source_key, self_wxid=self._account.wxid)

    def close(self) -> None:
        self.conn.close()
