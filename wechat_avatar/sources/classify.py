"""What one file is, by its content: SQLite table names, CSV header columns, JSON keys.

Names only ever say which database a still-encrypted file probably is (random bytes have
no tables to read); everything else is recognised by what is inside.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources import chatlog, memotrace, pywxdump
from wechat_avatar.sources.android_csv import TABLES as ANDROID_TABLES
from wechat_avatar.sources.android_csv import table_of
from wechat_avatar.sources.textfile import CsvFile, json_head

SQLITE_MAGIC = b"SQLite format 3\x00"
# the PC databases that hold messages or contacts; PyWxDump names its decrypted copies de_*.db
PC_DATABASE = re.compile(r"^(?:de_)?(?:MSG\d*|MicroMsg|message_\d+|contact|session)\.db$", re.IGNORECASE)
CSV_FORMATS = {"pywxdump": pywxdump.COLUMNS, "memotrace": memotrace.COLUMNS, "chatlog-csv": chatlog.CSV_COLUMNS}
ENCRYPTED_HINT = (
    "decrypt it first with a tool you trust and ingest the decrypted copy; wechat-avatar never reads keys "
    "out of a running WeChat"
)


def sqlite_tables(path: Path) -> set[str] | None:
    """Table names of a plain SQLite file; None if it is not one (encrypted, or not a database)."""
    with path.open("rb") as fh:
        if fh.read(16) != SQLITE_MAGIC:
            return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return set()  # damaged: the Android reader says how
    finally:
        conn.close()


def database_kind(tables: set[str]) -> str | None:
    """android | pc3-msg | pc3-names | pc4-msg | pc4-names, from a decrypted database's tables."""
    if {"message", "rcontact", "userinfo"} <= tables:
        return "android"
    if "MSG" in tables:
        return "pc3-msg"
    if {"Contact", "ChatRoom"} <= tables:
        return "pc3-names"
    if "Name2Id" in tables:
        return "pc4-msg"
    if "contact" in tables:
        return "pc4-names"
    return None


def still_encrypted(path: Path) -> SourceFormatError:
    return SourceFormatError(f"{path} is still encrypted (a PC WeChat database)", hint=ENCRYPTED_HINT)


def csv_kind(path: Path) -> str | None:
    """pywxdump | memotrace | chatlog-csv | android (a table of EnMicroMsg.db), by the header.

    A header with most of a format's columns but not all is an error naming what is missing.
    """
    header = CsvFile(path).header
    if set(memotrace.ALL_IN_ONE) <= set(header):  # a chat file, or older WeChatMsg's all-in-one messages.csv
        return "memotrace"
    for kind, columns in CSV_FORMATS.items():
        have = set(header) & set(columns)
        if len(have) == len(columns):
            return kind
        if len(have) * 2 >= len(columns):
            missing = [c for c in columns if c not in have]
            raise SourceFormatError(
                f"{path.name} looks like a {kind} export but is missing columns: {', '.join(missing)}",
                hint="export it again with every column (extra columns are fine)",
            )
    if table_of(header) or path.stem.lower() in ANDROID_TABLES:
        return "android"
    return None


def json_kind(path: Path) -> str | None:
    """pywxdump (messages) | pywxdump-users (users.json) | chatlog-json | empty, by the keys it shows."""
    head = json_head(path)
    if head.startswith("[") and head[1:].lstrip().startswith("]"):
        return "empty"
    if '"type_name"' in head and '"MsgSvrID"' in head:
        return "pywxdump"
    if '"talkerName"' in head or ('"isChatRoom"' in head and '"seq"' in head):
        return "chatlog-json"
    if head.startswith("{") and '"wxid"' in head and '"nickname"' in head:
        return "pywxdump-users"
    return None
