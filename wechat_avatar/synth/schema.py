"""EnMicroMsg.db table layouts, with the full column sets of reference §1.3.

Declarations copy WeChat's own CREATE TABLE style (LONG, `default ''`), because readers
meet exactly these affinities: `content` is TEXT but may hold a BLOB, `roomdata` is BLOB.
"""

from __future__ import annotations

MESSAGE = (
    ("msgId", "INTEGER PRIMARY KEY"),
    ("msgSvrId", "INTEGER"),
    ("type", "INT"),
    ("status", "INT"),
    ("isSend", "INT"),
    ("isShowTimer", "INTEGER"),
    ("createTime", "INTEGER"),
    ("talker", "TEXT"),
    ("content", "TEXT"),
    ("imgPath", "TEXT"),
    ("reserved", "TEXT"),
    ("lvbuffer", "BLOB"),
    ("transContent", "TEXT"),
    ("transBrandWording", "TEXT"),
    ("talkerId", "INTEGER"),
    ("bizClientMsgId", "TEXT"),
    ("bizChatId", "INTEGER DEFAULT -1"),
    ("bizChatUserId", "TEXT"),
    ("msgSeq", "INTEGER"),
    ("flag", "INT"),
    ("solitaireFoldInfo", "BLOB"),
    ("historyId", "TEXT"),
)
RCONTACT = (
    ("username", "TEXT default '' PRIMARY KEY"),
    ("alias", "TEXT default ''"),
    ("conRemark", "TEXT default ''"),
    ("domainList", "TEXT default ''"),
    ("nickname", "TEXT default ''"),
    ("pyInitial", "TEXT default ''"),
    ("quanPin", "TEXT default ''"),
    ("showHead", "INTEGER default '0'"),
    ("type", "INTEGER default '0'"),
    ("uiType", "LONG default '0'"),
    ("weiboFlag", "INTEGER default '0'"),
    ("weiboNickname", "TEXT default ''"),
    ("conRemarkPYFull", "TEXT default ''"),
    ("conRemarkPYShort", "TEXT default ''"),
    ("lvbuff", "BLOB"),
    ("verifyFlag", "INTEGER default '0'"),
    ("encryptUsername", "TEXT default ''"),
    ("chatroomFlag", "INTEGER"),
    ("deleteFlag", "INTEGER default '0'"),
    ("contactLabelIds", "TEXT default ''"),
    ("descWordingId", "TEXT default ''"),
    ("openImAppid", "TEXT"),
    ("sourceExtInfo", "TEXT"),
    ("ticket", "TEXT default ''"),
    ("usernameFlag", "LONG default '0'"),
    ("contactExtra", "BLOB"),
    ("createTime", "LONG default '0'"),
)
USERINFO = (("id", "INTEGER PRIMARY KEY"), ("type", "INT"), ("value", "TEXT"))
CHATROOM = (
    ("chatroomname", "TEXT default '' PRIMARY KEY"),
    ("addtime", "LONG"),
    ("memberlist", "TEXT"),
    ("displayname", "TEXT"),
    ("chatroomnick", "TEXT"),
    ("roomflag", "INTEGER"),
    ("roomowner", "TEXT"),
    ("roomdata", "BLOB"),
    ("isShowname", "INTEGER"),
    ("selfDisplayName", "TEXT"),
    ("style", "INTEGER"),
    ("chatroomdataflag", "INTEGER"),
    ("modifytime", "LONG"),
    ("chatroomnotice", "TEXT"),
    ("chatroomVersion", "INTEGER"),
    ("chatroomnoticeEditor", "TEXT"),
    ("chatroomnoticePublishTime", "LONG"),
    ("chatroomNoticeNew", "INTEGER"),
    ("chatroomLocalVersion", "LONG"),
    ("chatroomStatus", "INTEGER"),
    ("memberCount", "INTEGER default '-1'"),
)
IMG_FLAG = (
    ("username", "VARCHAR(40) PRIMARY KEY"),
    ("imgflag", "int"),
    ("lastupdatetime", "int"),
    ("reserved1", "text"),
    ("reserved2", "text"),
    ("reserved3", "int"),
    ("reserved4", "int"),
)
TABLES = {
    "message": MESSAGE,
    "qmessage": MESSAGE,
    "rcontact": RCONTACT,
    "userinfo": USERINFO,
    "chatroom": CHATROOM,
    "img_flag": IMG_FLAG,
}
# WeChat's own index names; created with the tables, before any row.
INDEXES = (
    "CREATE INDEX messageSvrIdIndex ON message ( msgSvrId )",
    "CREATE INDEX messageTalkerCreateTimeIndex ON message ( talker,createTime )",
)


def columns(table: str) -> list[str]:
    return [name for name, _ in TABLES[table]]


def create_sql(table: str) -> str:
    body = ", ".join(f"{name} {decl}" for name, decl in TABLES[table])
    return f"CREATE TABLE {table} ( {body} )"


def insert_sql(table: str) -> str:
    cols = columns(table)
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
