"""Write the synthetic history as a decrypted PC WeChat 3.x account folder (reference §2).

    WeChat Files/<wxid>/Msg/MicroMsg.db        Contact, ChatRoom (+ an empty Session)
    WeChat Files/<wxid>/Msg/Multi/MSG0.db …    MSG + Name2ID, split by size like WeChat does

Type-49 payloads live LZ4-block-compressed in CompressContent with StrContent empty; a
group member's wxid is item type 1 of the BytesExtra protobuf; calls are a status code
plus DisplayContent. A `message` row and the MSG row it becomes:

    msgId=812 type=822083633 talker=123@chatroom content="wxid_a:\\n<msg><appmsg>…<type>57</type>…"
    -> (localId=406, MsgSvrID=…, Type=49, SubType=57, IsSender=0, CreateTime=1687360045,
        StrTalker="123@chatroom", StrContent="", CompressContent=lz4(<msg>…), BytesExtra={3: [{1: 1, 2: "wxid_a"}]})
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import lz4.block

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.kinds import WIRE_TYPE
from wechat_avatar.synth.pc import SYSTEM_TYPES, contact_rows, pc_content, voip_parts
from wechat_avatar.synth.persona import Cast
from wechat_avatar.synth.tables import chatroom_rows

SHARD_MAX = 250_000  # WeChat starts a new MSGn.db at about 200 MB
MSG_COLUMNS = (
    "localId INTEGER PRIMARY KEY AUTOINCREMENT, TalkerId INT DEFAULT 0, MsgSvrID INT, Type INT, SubType INT, "
    "IsSender INT, CreateTime INT, Sequence INT DEFAULT 0, StatusEx INT DEFAULT 0, FlagEx INT, Status INT, "
    "MsgServerSeq INT, MsgSequence INT, StrTalker TEXT, StrContent TEXT, DisplayContent TEXT, "
    "Reserved0 INT DEFAULT 0, Reserved1 INT DEFAULT 0, Reserved2 INT DEFAULT 0, Reserved3 INT DEFAULT 0, "
    "Reserved4 TEXT, Reserved5 TEXT, Reserved6 TEXT, CompressContent BLOB, BytesExtra BLOB, BytesTrans BLOB"
)
INSERT_MSG = (
    "INSERT INTO MSG (localId, TalkerId, MsgSvrID, Type, SubType, IsSender, CreateTime, Sequence, Status, StrTalker, "
    "StrContent, DisplayContent, CompressContent, BytesExtra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
CONTACT_COLUMNS = (
    "UserName TEXT PRIMARY KEY, Alias TEXT, EncryptUserName TEXT, DelFlag INTEGER DEFAULT 0, Type INTEGER, "
    "VerifyFlag INTEGER, Reserved1 INTEGER DEFAULT 0, Reserved2 INTEGER DEFAULT 0, Reserved3 TEXT, Reserved4 TEXT, "
    "Remark TEXT, NickName TEXT, LabelIDList TEXT, DomainList TEXT, ChatRoomType INT, PYInitial TEXT, "
    "QuanPin TEXT, RemarkPYInitial TEXT, RemarkQuanPin TEXT, BigHeadImgUrl TEXT, SmallHeadImgUrl TEXT, "
    "HeadImgMd5 TEXT, ChatRoomNotify INTEGER DEFAULT 0, Reserved5 INTEGER DEFAULT 0, Reserved6 TEXT, "
    "Reserved7 TEXT, ExtraBuf BLOB, Reserved8 INTEGER DEFAULT 0, Reserved9 INTEGER DEFAULT 0, Reserved10 TEXT, "
    "Reserved11 TEXT"
)
CHATROOM_COLUMNS = (
    "ChatRoomName TEXT PRIMARY KEY, UserNameList TEXT, DisplayNameList TEXT, ChatRoomFlag int Default 0, "
    "Owner INTEGER DEFAULT 0, IsShowName INTEGER DEFAULT 0, SelfDisplayName TEXT, Reserved1 INTEGER DEFAULT 0, "
    "Reserved2 TEXT, Reserved3 INTEGER DEFAULT 0, Reserved4 TEXT, Reserved5 INTEGER DEFAULT 0, Reserved6 TEXT, "
    "RoomData BLOB, Reserved7 INTEGER DEFAULT 0, Reserved8 TEXT"
)
SEPARATOR = "^G"  # how PyWxDump splits UserNameList (reference §2.4)


def write_pc3(out: Path, cast: Cast, events: Iterable[Event], n: int) -> Path:
    """Write the account folder under `out`; returns the folder a user would hand to ingest."""
    msg_dir = out / "WeChat Files" / cast.me.wxid / "Msg"
    (msg_dir / "Multi").mkdir(parents=True, exist_ok=True)
    _write_micromsg(msg_dir / "MicroMsg.db", cast)
    conn, names = None, 0
    for shard, local_id, talker_id, event in numbered(events, n):
        if local_id == 1:  # the next MSGn.db
            if conn is not None:
                _close(conn)
            conn, names = _new_shard(msg_dir / "Multi" / f"MSG{shard}.db"), 0
        if talker_id > names:
            conn.execute("INSERT INTO Name2ID (UsrName) VALUES (?)", (event.talker,))
            names = talker_id
        conn.execute(INSERT_MSG, (local_id, *msg_row(event, talker_id)))
    if conn is not None:
        _close(conn)
    return msg_dir.parent


def numbered(events: Iterable[Event], n: int) -> Iterator[tuple[int, int, int, Event]]:
    """(shard, localId, TalkerId, event): where each message lands in MSG0.db … MSGk.db."""
    size = max(1, min(SHARD_MAX, math.ceil(n / 2)))
    talker_ids: dict[str, int] = {}
    for i, event in enumerate(events):
        shard, local_id = divmod(i, size)
        if local_id == 0:
            talker_ids = {}
        talker_id = talker_ids.setdefault(event.talker, len(talker_ids) + 1)
        yield shard, local_id + 1, talker_id, event


def msg_row(e: Event, talker_id: int) -> tuple:
    """One MSG row in INSERT_MSG order (see the module docstring)."""
    base, sub = WIRE_TYPE[e.kind]
    content, display, compressed = pc_content(e), "", None
    if base == 49:  # the appmsg XML lives only in CompressContent
        raw = content.encode() if isinstance(content, str) else content
        content, compressed = "", lz4.block.compress(raw, store_size=False)
    elif base == 50:
        content, display = voip_parts(e)
    return (
        talker_id,
        e.server_id,
        base,
        sub,
        int(e.is_send),
        e.created_ms // 1000,
        e.created_ms,  # Sequence: CreateTime * 1000 + a counter
        2 if e.is_send else 4,
        e.talker,
        content,
        display,
        compressed,
        bytes_extra(e),
    )


def bytes_extra(e: Event) -> bytes:
    """{1: {1: 0, 2: 0}, 3: [{1: type, 2: value}]}: type 1 = a group member's wxid, 7 = msgsource."""
    items = []
    if e.member_count and not e.is_send and WIRE_TYPE[e.kind][0] not in SYSTEM_TYPES:
        items.append(_message(_field(1, 1) + _field(2, e.sender.encode())))
    if e.member_count:
        source = f"<msgsource><membercount>{e.member_count}</membercount></msgsource>"
        items.append(_message(_field(1, 7) + _field(2, source.encode())))
    return _message(_field(1, 0) + _field(2, 0), number=1) + b"".join(items)


def _message(body: bytes, number: int = 3) -> bytes:
    return _field(number, body)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _new_shard(path: Path) -> sqlite3.Connection:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.execute(f"CREATE TABLE MSG ({MSG_COLUMNS})")
    conn.execute("CREATE TABLE Name2ID (UsrName TEXT PRIMARY KEY)")
    conn.execute("CREATE INDEX MSG_CREATETIME ON MSG (CreateTime)")
    return conn


def _close(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")
    conn.close()


def _write_micromsg(path: Path, cast: Cast) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE Contact ({CONTACT_COLUMNS})")
    conn.execute(f"CREATE TABLE ChatRoom ({CHATROOM_COLUMNS})")
    conn.execute("CREATE TABLE Session (strUsrName TEXT PRIMARY KEY, nOrder INT, strNickName TEXT, nTime INTEGER)")
    groups = {g.wxid for g in cast.groups}
    contacts = [contact_row(row, row[0] in groups) for row in contact_rows(cast)]
    conn.executemany(f"INSERT INTO Contact VALUES ({', '.join('?' * 31)})", contacts)
    conn.executemany(f"INSERT INTO ChatRoom VALUES ({', '.join('?' * 16)})", map(chatroom_row, chatroom_rows(cast)))
    conn.commit()
    conn.close()


def contact_row(r: tuple, group: bool) -> tuple:
    """An Android rcontact row -> a Contact row: the same person, PC 3.x's columns."""
    username, alias, remark, _, nickname, py_initial, quan_pin, _, rtype = r[:9]
    remark_full, remark_short, verify, encrypt = r[12], r[13], r[15], r[16]
    joined = int(group or rtype & 1)  # Reserved1: a friend or a group you are in
    return (username, alias, encrypt, 0, rtype, verify, joined, 0, "", "", remark, nickname, "", "", int(group),
            py_initial, quan_pin, remark_short, remark_full, "", "", "", 0, 0, "", "", b"", 0, 0, "", "")  # fmt: skip


def chatroom_row(r: tuple) -> tuple:
    """An Android chatroom row -> a ChatRoom row (lists joined with ^G; RoomData is the same protobuf)."""
    name, _, memberlist, displayname, _, _, owner, roomdata, show_name, self_name = r[:10]
    members, nicks = memberlist.split(";"), displayname.split("、")
    return (name, SEPARATOR.join(members), SEPARATOR.join(nicks), 0, 0, show_name, self_name, 0, owner, 0, "", 0,
            "", roomdata, 0, "")  # fmt: skip
