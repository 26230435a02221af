"""PC WeChat 3.x and 4.x on small hand-built databases with the reference's exact columns (§2, §3)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import blackboxprotobuf
import lz4.block
import zstandard
from conftest import run_cli

from wechat_avatar.sources.protobuf import ProtobufError, fields

ME, HU, ROOM = "wxid_me", "wxid_hu", "123@chatroom"
QUOTE = ("<msg><appmsg><title>我没问我爸</title><type>57</type><refermsg><type>1</type><svrid>1</svrid>"
         "<displayname>??</displayname><content>我妈说可以</content></refermsg></appmsg></msg>")  # fmt: skip
LINK = "<msg><appmsg><title>打工人的周一</title><type>5</type><url>https://mp.weixin.qq.com/s/x</url></appmsg></msg>"
TRANSFER = "<msg><appmsg><title>微信转账</title><type>2000</type><wcpayinfo><paysubtype>1</paysubtype></wcpayinfo></appmsg></msg>"  # noqa: E501
MSG_SQL = """CREATE TABLE MSG (localId INTEGER PRIMARY KEY AUTOINCREMENT, TalkerId INT DEFAULT 0, MsgSvrID INT,
Type INT, SubType INT, IsSender INT, CreateTime INT, Sequence INT DEFAULT 0, StatusEx INT DEFAULT 0, FlagEx INT,
Status INT, MsgServerSeq INT, MsgSequence INT, StrTalker TEXT, StrContent TEXT, DisplayContent TEXT,
Reserved0 INT DEFAULT 0, Reserved1 INT DEFAULT 0, Reserved2 INT DEFAULT 0, Reserved3 INT DEFAULT 0, Reserved4 TEXT,
Reserved5 TEXT, Reserved6 TEXT, CompressContent BLOB, BytesExtra BLOB, BytesTrans BLOB)"""
CONTACT_SQL = """CREATE TABLE Contact (UserName TEXT PRIMARY KEY, Alias TEXT, EncryptUserName TEXT, DelFlag INTEGER,
Type INTEGER, VerifyFlag INTEGER, Reserved1 INTEGER, Reserved2 INTEGER, Reserved3 TEXT, Reserved4 TEXT, Remark TEXT,
NickName TEXT, LabelIDList TEXT, DomainList TEXT, ChatRoomType INT, PYInitial TEXT, QuanPin TEXT,
RemarkPYInitial TEXT, RemarkQuanPin TEXT, BigHeadImgUrl TEXT, SmallHeadImgUrl TEXT, HeadImgMd5 TEXT,
ChatRoomNotify INTEGER, Reserved5 INTEGER, Reserved6 TEXT, Reserved7 TEXT, ExtraBuf BLOB, Reserved8 INTEGER,
Reserved9 INTEGER, Reserved10 TEXT, Reserved11 TEXT)"""
CHATROOM_SQL = """CREATE TABLE ChatRoom (ChatRoomName TEXT PRIMARY KEY, UserNameList TEXT, DisplayNameList TEXT,
ChatRoomFlag int, Owner INTEGER, IsShowName INTEGER, SelfDisplayName TEXT, Reserved1 INTEGER, Reserved2 TEXT,
Reserved3 INTEGER, Reserved4 TEXT, Reserved5 INTEGER, Reserved6 TEXT, RoomData BLOB, Reserved7 INTEGER,
Reserved8 TEXT)"""
EXTRA_TYPEDEF = {
    "1": {"type": "message", "message_typedef": {"1": {"type": "int"}, "2": {"type": "int"}}},
    "3": {"type": "message", "seen_repeated": True,
          "message_typedef": {"1": {"type": "int"}, "2": {"type": "string"}}},
}  # fmt: skip
ROOMDATA_TYPEDEF = {"1": {"type": "message", "seen_repeated": True,
                          "message_typedef": {"1": {"type": "string"}, "2": {"type": "string"}}}}  # fmt: skip


def bytes_extra(sender: str) -> bytes:
    """Encoded by bbpb, not by our own writer: the reader must agree with an independent encoder."""
    value = {"1": {"1": 0, "2": 0}, "3": [{"1": 1, "2": sender}, {"1": 7, "2": "<msgsource />"}]}
    return bytes(blackboxprotobuf.encode_message(value, EXTRA_TYPEDEF))


def lz4_block(xml: str) -> bytes:
    return lz4.block.compress(xml.encode() + b"\x00", store_size=False)  # WeChat pads with a NUL


# (localId, MsgSvrID, Type, SubType, IsSender, CreateTime, StrTalker, StrContent, DisplayContent, CompressContent,
#  BytesExtra) and the text each renders to
PC3_ROWS: list[tuple[tuple[Any, ...], str]] = [
    ((1, 101, 1, 0, 0, 1687360045, HU, "在吗", None, None, None), "在吗"),
    ((2, 102, 1, 0, 1, 1687360050, HU, "在", None, None, None), "在"),
    ((3, 103, 49, 57, 0, 1687360060, ROOM, "", None, lz4_block(QUOTE), bytes_extra(HU)), "我没问我爸"),
    ((4, 104, 49, 5, 1, 1687360070, ROOM, LINK, None, None, None), "[外部链接]打工人的周一"),  # XML left in StrContent
    ((5, 105, 50, 0, 0, 1687360080, HU, "5", None, None, None), "[语音通话]已取消"),  # a call code, no bubble text
    ((6, 106, 50, 0, 0, 1687360090, HU, "11", "通话时长 00:27", None, None), "[语音通话]通话时长 00:27"),
    ((7, 107, 10000, 0, 0, 1687360100, ROOM, '"胡三行"改群名为“开黑群”', None, None, None), '"胡三行"改群名为“开黑群”'),
    ((8, 108, 3, 0, 0, 1687360110, ROOM, "<msg><img md5='a'/></msg>", None, None, bytes_extra(HU + ":25319:1")),
     "[手机图片]"),
]  # fmt: skip


def build_pc3(root: Path, rows: list[tuple[Any, ...]], micromsg: bool = True) -> Path:
    """`root/WeChat Files/wxid_me/Msg/{MicroMsg.db, Multi/MSG0.db}`; returns the account folder."""
    msg = root / "WeChat Files" / ME / "Msg"
    (msg / "Multi").mkdir(parents=True)
    conn = sqlite3.connect(msg / "Multi" / "MSG0.db")
    conn.execute(MSG_SQL)
    conn.executemany(
        "INSERT INTO MSG (localId, MsgSvrID, Type, SubType, IsSender, CreateTime, StrTalker, StrContent, "
        "DisplayContent, CompressContent, BytesExtra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    if micromsg:
        conn = sqlite3.connect(msg / "MicroMsg.db")
        conn.execute(CONTACT_SQL)
        conn.execute(CHATROOM_SQL)
        contacts = [(ME, "", "", "乌冬面", 1, 0, 1), (HU, "", "胡三行", "Hu", 3, 0, 1),
                    (ROOM, "", "", "开黑群", 2, 0, 1), ("wxid_zz", "", "", "路人", 4, 0, 0)]  # fmt: skip
        conn.executemany("INSERT INTO Contact (UserName, Alias, Remark, NickName, Type, VerifyFlag, Reserved1) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", contacts)  # fmt: skip
        room_data = bytes(blackboxprotobuf.encode_message({"1": [{"1": HU, "2": "??"}, {"1": ME}]}, ROOMDATA_TYPEDEF))
        room = (ROOM, f"{HU}^G{ME}^Gwxid_zz", "Hu^G乌冬面^G路人", HU, room_data)
        conn.execute("INSERT INTO ChatRoom (ChatRoomName, UserNameList, DisplayNameList, Reserved2, RoomData) "
                     "VALUES (?, ?, ?, ?, ?)", room)  # fmt: skip
        conn.commit()
    return msg.parent


def messages(ws: Path) -> list[dict[str, Any]]:
    result = run_cli("messages", "--workspace", ws)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def ingested(account: Path, ws: Path, *summary: str) -> list[dict[str, Any]]:
    """Ingest through the CLI, check its summary says each of `summary`, return the stored messages."""
    result = run_cli("ingest", account, "--workspace", ws)
    assert result.returncode == 0, result.stderr
    assert all(part in result.stdout for part in summary), result.stdout
    return messages(ws)


def test_pc3_hand_built(tmp_path: Path) -> None:
    account = build_pc3(tmp_path, [row for row, _ in PC3_ROWS])
    out = ingested(account, tmp_path / "ws", "pc3-db", "read 8, added 8")
    assert [m["text"] for m in out] == [text for _, text in PC3_ROWS]
    quote = out[2]
    assert (quote["chat"], quote["sender"], quote["sender_name"], quote["is_self"]) == ("开黑群", HU, "??", False)
    assert out[7]["sender"] == HU  # WeChatMsg's "wxid:25319:1" tail is not part of the wxid
    assert (out[1]["sender_name"], out[1]["is_self"], out[0]["chat"]) == ("乌冬面", True, "胡三行")
    assert out[0]["time"] == "2023-06-21T23:07:25+08:00"
    db = sqlite3.connect(tmp_path / "ws" / "chat.db")
    assert db.execute("SELECT source, source_id, server_id FROM messages WHERE id = 3").fetchone() == (
        f"pc3:{ME}",
        "MSG0:3",
        103,
    )
    assert db.execute("SELECT kind FROM contacts WHERE wxid = 'wxid_zz'").fetchone() == ("stranger",)


def test_pc3_without_micromsg_keeps_wxids_as_names(tmp_path: Path) -> None:
    account = build_pc3(tmp_path, [row for row, _ in PC3_ROWS[:2]], micromsg=False)
    result = run_cli("ingest", account / "Msg" / "Multi" / "MSG0.db", "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "note: no MicroMsg.db beside MSG0.db" in result.stdout
    assert {m["chat"] for m in messages(tmp_path / "ws")} == {HU}


def test_pc3_decrypted_copies_elsewhere_need_self(tmp_path: Path) -> None:
    account = build_pc3(tmp_path / "orig", [row for row, _ in PC3_ROWS[:2]])
    flat = tmp_path / "decrypted"
    flat.mkdir()
    (account / "Msg" / "Multi" / "MSG0.db").rename(flat / "de_MSG0.db")
    (account / "Msg" / "MicroMsg.db").rename(flat / "de_MicroMsg.db")
    refused = run_cli("ingest", flat, "--workspace", tmp_path / "ws")
    assert refused.returncode == 2 and "cannot tell whose PC history" in refused.stderr and "--self" in refused.stderr
    result = run_cli("ingest", flat, "--self", ME, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert [m["chat"] for m in messages(tmp_path / "ws")] == ["胡三行", "胡三行"]


V4_MSG_SQL = """CREATE TABLE {table} (local_id INTEGER PRIMARY KEY AUTOINCREMENT, server_id INTEGER,
local_type INTEGER, sort_seq INTEGER, real_sender_id INTEGER, create_time INTEGER, status INTEGER,
upload_status INTEGER, download_status INTEGER, server_seq INTEGER, origin_source INTEGER, source TEXT,
message_content TEXT, compress_content TEXT, packed_info_data BLOB, WCDB_CT_message_content INTEGER DEFAULT NULL,
WCDB_CT_source INTEGER DEFAULT NULL)"""
V4_CONTACT_SQL = """CREATE TABLE contact (id INTEGER PRIMARY KEY, username TEXT, local_type INTEGER, alias TEXT,
encrypt_username TEXT, flag INTEGER, delete_flag INTEGER, verify_flag INTEGER, remark TEXT, remark_quan_pin TEXT,
remark_pin_yin_initial TEXT, nick_name TEXT, pin_yin_initial TEXT, quan_pin TEXT, big_head_url TEXT,
small_head_url TEXT, head_img_md5 TEXT, chat_room_notify INTEGER, is_in_chat_room INTEGER, description TEXT,
extra_buffer BLOB, chat_room_type INTEGER)"""


def zstd(text: str) -> bytes:
    return zstandard.ZstdCompressor().compress(text.encode())


# (talker, server_id, local_type, sender, create_time, message_content, status) and the text each renders to
V4_ROWS: list[tuple[tuple[Any, ...], str]] = [
    ((HU, 201, 1, HU, 1700000000, "早", 4), "早"),
    ((HU, 202, 1, ME, 1700000010, "早啊", 2), "早啊"),
    ((ROOM, 203, 244813135921, HU, 1700000020, zstd(f"{HU}:\n{QUOTE}"), 4), "我没问我爸"),  # reference §3.2 values
    ((ROOM, 204, 21474836529, ME, 1700000030, LINK, 2), "[外部链接]打工人的周一"),
    ((HU, 205, 8589934592049, HU, 1700000040, zstd(TRANSFER), 4), "[微信转账]"),
    ((ROOM, 206, 10000, None, 1700000050, "你邀请\"Hu\"加入了群聊", 4), "你邀请\"Hu\"加入了群聊"),
]  # fmt: skip


def build_pc4(root: Path, rows: list[tuple[Any, ...]], folder: str = f"{ME}_c4b1") -> Path:
    storage = root / "xwechat_files" / folder / "db_storage"
    (storage / "message").mkdir(parents=True)
    (storage / "contact").mkdir()
    conn = sqlite3.connect(storage / "message" / "message_0.db")
    conn.execute("CREATE TABLE Name2Id (user_name TEXT PRIMARY KEY, is_session INTEGER)")
    names = [ME, HU, ROOM]
    conn.executemany("INSERT INTO Name2Id (user_name) VALUES (?)", [(n,) for n in names])
    for talker in (HU, ROOM):
        conn.execute(V4_MSG_SQL.format(table="Msg_" + hashlib.md5(talker.encode()).hexdigest()))
    for talker, server_id, local_type, sender, created, content, status in rows:
        table = "Msg_" + hashlib.md5(talker.encode()).hexdigest()
        sender_id = names.index(sender) + 1 if sender else 0
        ct = 4 if isinstance(content, bytes) else None
        conn.execute(f"INSERT INTO {table} (server_id, local_type, sort_seq, real_sender_id, create_time, status, "
                     "message_content, WCDB_CT_message_content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (server_id, local_type, created * 1000, sender_id, created, status, content, ct))  # fmt: skip
    conn.commit()
    conn = sqlite3.connect(storage / "contact" / "contact.db")
    conn.execute(V4_CONTACT_SQL)
    conn.execute("CREATE TABLE chat_room (id INTEGER PRIMARY KEY, username TEXT, owner TEXT, ext_buffer BLOB)")
    conn.executemany("INSERT INTO contact (username, local_type, alias, remark, nick_name, verify_flag) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [(ME, 1, "", "", "乌冬面", 0), (HU, 1, "", "胡三行", "Hu", 0),
                                                 (ROOM, 2, "", "", "开黑群", 0)])  # fmt: skip
    ext = bytes(blackboxprotobuf.encode_message({"1": [{"1": HU, "2": "??"}, {"1": ME}]}, ROOMDATA_TYPEDEF))
    conn.execute("INSERT INTO chat_room (username, owner, ext_buffer) VALUES (?, ?, ?)", (ROOM, HU, ext))
    conn.commit()
    return storage.parent


def test_pc4_hand_built(tmp_path: Path) -> None:
    account = build_pc4(tmp_path, [row for row, _ in V4_ROWS])
    out = ingested(account, tmp_path / "ws", "pc4-db", "read 6, added 6")
    assert [m["text"] for m in out] == [text for _, text in V4_ROWS]
    assert [(m["type"], m["subtype"]) for m in out[2:5]] == [(49, 57), (49, 5), (49, 2000)]
    assert (out[2]["sender"], out[2]["sender_name"], out[1]["is_self"], out[3]["is_self"]) == (HU, "??", True, True)
    assert out[5]["sender"] == "" and out[0]["chat"] == "胡三行"


def test_pc4_account_from_the_private_chats_when_the_folder_does_not_say(tmp_path: Path) -> None:
    account = build_pc4(tmp_path, [row for row, _ in V4_ROWS], folder="backup")
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    stats = json.loads(run_cli("stats", "--json", "--workspace", tmp_path / "ws").stdout)
    assert stats["account"] == {"wxid": ME, "nickname": "乌冬面"}


def test_protobuf_reader_agrees_with_bbpb() -> None:
    blob = bytes_extra("wxid_中文")
    top = fields(blob)
    assert [number for number, _ in top] == [1, 3, 3]
    assert dict(fields(top[1][1])) == {1: 1, 2: "wxid_中文".encode()}
    for broken in (blob[:-3], b"\x0f\x01", b"\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"):
        try:
            fields(broken)
        except ProtobufError:
            continue
        raise AssertionError(broken)
