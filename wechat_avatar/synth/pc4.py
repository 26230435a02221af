"""Write the synthetic history as a decrypted WeChat 4.x data folder (reference §3).

    xwechat_files/<wxid>_a1b2/db_storage/message/message_0.db …   Name2Id, Msg_<md5(talker)>, Timestamp
    xwechat_files/<wxid>_a1b2/db_storage/contact/contact.db        contact, chat_room

One table per chat, `local_type = subtype << 32 | type`, others' group lines prefixed
"wxid:\\n" as on the phone, longer payloads zstd-compressed (WCDB_CT_message_content = 4):

    msgId=812 type=822083633 talker=123@chatroom content="wxid_a:\\n<msg><appmsg>…<type>57</type>…"
    -> Msg_<md5("123@chatroom")>(local_id=…, server_id=…, local_type=244813135921, real_sender_id=<wxid_a>,
        create_time=1687360045, message_content=zstd("wxid_a:\\n<msg>…"), WCDB_CT_message_content=4)
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import zstandard

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.kinds import WIRE_TYPE
from wechat_avatar.synth.pc import SYSTEM_TYPES, contact_rows, pc_content
from wechat_avatar.synth.persona import Cast
from wechat_avatar.synth.tables import chatroom_rows

SHARD_MAX = 250_000
COMPRESS_FROM = 64  # bytes: WCDB leaves short payloads as they are
MSG_COLUMNS = (
    "local_id INTEGER PRIMARY KEY AUTOINCREMENT, server_id INTEGER, local_type INTEGER, sort_seq INTEGER, "
    "real_sender_id INTEGER, create_time INTEGER, status INTEGER, upload_status INTEGER, download_status INTEGER, "
    "server_seq INTEGER, origin_source INTEGER, source TEXT, message_content TEXT, compress_content TEXT, "
    "packed_info_data BLOB, WCDB_CT_message_content INTEGER DEFAULT NULL, WCDB_CT_source INTEGER DEFAULT NULL"
)
CONTACT_COLUMNS = (
    "id INTEGER PRIMARY KEY, username TEXT, local_type INTEGER, alias TEXT, encrypt_username TEXT, flag INTEGER, "
    "delete_flag INTEGER, verify_flag INTEGER, remark TEXT, remark_quan_pin TEXT, remark_pin_yin_initial TEXT, "
    "nick_name TEXT, pin_yin_initial TEXT, quan_pin TEXT, big_head_url TEXT, small_head_url TEXT, "
    "head_img_md5 TEXT, chat_room_notify INTEGER, is_in_chat_room INTEGER, description TEXT, extra_buffer BLOB, "
    "chat_room_type INTEGER"
)


def table_name(talker: str) -> str:
    return "Msg_" + hashlib.md5(talker.encode()).hexdigest()


def write_pc4(out: Path, cast: Cast, events: Iterable[Event], n: int) -> Path:
    """Write the data folder under `out`; returns the account folder a user would hand to ingest."""
    account = out / "xwechat_files" / f"{cast.me.wxid}_a1b2"
    storage = account / "db_storage"
    (storage / "message").mkdir(parents=True, exist_ok=True)
    (storage / "contact").mkdir(parents=True, exist_ok=True)
    _write_contacts(storage / "contact" / "contact.db", cast)
    size = max(1, min(SHARD_MAX, math.ceil(n / 2)))
    shard = None
    zstd = zstandard.ZstdCompressor(level=3)
    for i, event in enumerate(events):
        if i % size == 0:
            if shard is not None:
                shard.close()
            shard = _Shard(storage / "message" / f"message_{i // size}.db", event.created_ms // 1000)
        shard.add(event, zstd)
    if shard is not None:
        shard.close()
    return account


class _Shard:
    """One message_N.db being written: its Name2Id rows and the chat tables made so far."""

    def __init__(self, path: Path, start_s: int) -> None:
        path.unlink(missing_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("BEGIN")
        self.conn.execute("CREATE TABLE Name2Id (user_name TEXT PRIMARY KEY, is_session INTEGER)")
        self.conn.execute("CREATE TABLE Timestamp (timestamp INTEGER)")
        self.conn.execute("INSERT INTO Timestamp VALUES (?)", (start_s,))
        self.ids: dict[str, int] = {}
        self.tables: set[str] = set()

    def name_id(self, wxid: str) -> int:
        if wxid not in self.ids:
            self.conn.execute("INSERT INTO Name2Id (user_name, is_session) VALUES (?, 1)", (wxid,))
            self.ids[wxid] = len(self.ids) + 1
        return self.ids[wxid]

    def add(self, e: Event, zstd: zstandard.ZstdCompressor) -> None:
        table = table_name(e.talker)
        self.name_id(e.talker)
        if table not in self.tables:
            self.conn.execute(f"CREATE TABLE {table} ({MSG_COLUMNS})")
            self.tables.add(table)
        base, sub = WIRE_TYPE[e.kind]
        content, ct = message_content(e, base, zstd)
        sender = e.sender if e.member_count or e.is_send else e.talker  # in a private chat: you or the contact
        sender_id = self.name_id(sender) if e.sender else 0
        self.conn.execute(
            f"INSERT INTO {table} (server_id, local_type, sort_seq, real_sender_id, create_time, status, "
            "message_content, WCDB_CT_message_content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (e.server_id, sub << 32 | base, e.created_ms, sender_id, e.created_ms // 1000, 2 if e.is_send else 4,
             content, ct),
        )  # fmt: skip

    def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.close()


def message_content(e: Event, base: int, zstd: zstandard.ZstdCompressor) -> tuple[str | bytes, int | None]:
    """(message_content, WCDB_CT_message_content): prefixed like the phone, zstd (4) when long."""
    content = pc_content(e)
    if e.member_count and not e.is_send and base not in SYSTEM_TYPES:
        content = e.sender.encode() + b":\n" + content if isinstance(content, bytes) else f"{e.sender}:\n{content}"
    raw = content if isinstance(content, bytes) else content.encode()
    if len(raw) >= COMPRESS_FROM:
        return zstd.compress(raw), 4
    return content, None


def _write_contacts(path: Path, cast: Cast) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE contact ({CONTACT_COLUMNS})")
    conn.execute("CREATE TABLE chat_room (id INTEGER PRIMARY KEY, username TEXT, owner TEXT, ext_buffer BLOB)")
    groups = {g.wxid for g in cast.groups}
    rows = [contact_row(r, r[0] in groups) for r in contact_rows(cast)]
    conn.executemany(f"INSERT INTO contact VALUES (NULL{', ?' * 21})", rows)
    rooms = [(r[0], r[6], r[7]) for r in chatroom_rows(cast)]  # chatroomname, roomowner, roomdata
    conn.executemany("INSERT INTO chat_room (username, owner, ext_buffer) VALUES (?, ?, ?)", rooms)
    conn.commit()
    conn.close()


def contact_row(r: tuple, group: bool) -> tuple:
    """An Android rcontact row -> a 4.x contact row; local_type 1 friend, 2 group, 3 not a friend."""
    username, alias, remark, _, nickname, py_initial, quan_pin, _, rtype = r[:9]
    local_type = 2 if group else (1 if rtype & 1 else 3)
    return (username, local_type, alias, r[16], 0, 0, r[15], remark, r[12], r[13], nickname, py_initial, quan_pin,
            "", "", "", 0, 0, "", b"", int(group))  # fmt: skip
