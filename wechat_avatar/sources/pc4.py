"""WeChat 4.x (Windows and macOS), decrypted: `message_*.db` with one `Msg_<md5(talker)>` table
per chat, joined to its talker and senders through `Name2Id`, beside `contact.db`.

Reference §3. `local_type` packs `subtype << 32 | type`; `message_content` is zstd when it
starts with zstd's magic (WCDB_CT_message_content = 4); others' group lines start
"wxid:\\n" as on the phone; create_time is in seconds. The account is the data folder's
name without its 4-character tail (`xwechat_files/<wxid>_a1b2/db_storage/…`), else the
one sender other than the contact in private chats, else `--self`. Source key
`pc4:<wxid>`, source_id `<shard>:<talker>:<local_id>`. A chat-table row and what it becomes::

    ("message_0:123@chatroom:88", "123@chatroom", server_id=77310, local_type=244813135921, user_name="wxid_a",
     create_time=1687360045, message_content=zstd(b"wxid_a:\\n<msg><appmsg>…"), status=4)
    -> Message(source="pc4:wxid_me", source_id="message_0:123@chatroom:88", chat_id="123@chatroom",
               sender="wxid_a", is_self=False, timestamp_ms=1687360045000, base_type=49, sub_type=57,
               content="<msg><appmsg>…", source_type=244813135921, server_id=77310)
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import zstandard

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources import base
from wechat_avatar.sources.base import BadRecord, RowMapper, decode_text, query, query_value
from wechat_avatar.sources.damage import COPY_AGAIN, LOST_NAMES, advice, cause, damage, names_rows, resume, unread_note
from wechat_avatar.sources.protobuf import ProtobufError, fields

SYSTEM_TYPES = frozenset({10000, 10002})
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SHARD = re.compile(r"^(?:de_)?message_\d+\.db$", re.IGNORECASE)
_ACCOUNT_FOLDER = re.compile(r"^(.+)_[0-9a-zA-Z]{4}$")
_PREFIX = re.compile(r"([A-Za-z0-9_\-@.]+):\n")
_ROWS = (
    "SELECT ? || m.local_id, ?, m.server_id, m.local_type, n.user_name, m.create_time, "
    "CAST(m.message_content AS BLOB), m.status FROM {table} m LEFT JOIN Name2Id n ON m.real_sender_id = n.rowid "
    "ORDER BY m.sort_seq, m.local_id"
)
_ROW = _ROWS.replace("ORDER BY m.sort_seq, m.local_id", "WHERE m.local_id = ?")
_local = threading.local()  # a zstd decompressor per thread


def zstd_text(blob: bytes) -> str:
    if not hasattr(_local, "zstd"):
        _local.zstd = zstandard.ZstdDecompressor()
    stream = _local.zstd.decompressobj()  # WCDB's frames need not record their size
    try:
        raw = stream.decompress(blob)
    except zstandard.ZstdError:
        raise BadRecord("corrupt zstd message_content") from None
    if not stream.eof:  # a cut-off frame decodes "fine" up to where it stops
        raise BadRecord("corrupt zstd message_content")
    return decode_text(raw)[0]


def message_from_v4(row: Sequence[Any], source: str, self_wxid: str) -> Message:
    """One chat-table row, columns as in _ROWS -> Message (raises BadRecord)."""
    sid, talker, server_id, local_type, user_name, created, blob, status = row
    if not isinstance(local_type, int) or not isinstance(created, int):
        raise BadRecord("non-numeric local_type or create_time")
    base, sub = local_type & 0xFFFFFFFF, local_type >> 32
    blob = blob or b""
    content = zstd_text(blob) if blob.startswith(ZSTD_MAGIC) else decode_text(blob)[0]
    sender = user_name or ""
    # others' lines start "wxid:\n"; one that names someone else than the sender is the text ("todo:\n…")
    if talker.endswith("@chatroom") and (match := _PREFIX.match(content)) and match[1] in (sender, ""):
        sender, content = match[1], content[match.end() :]
    if base in SYSTEM_TYPES:
        sender, is_self = "", False
    else:
        if not sender:  # no Name2Id row: the status is all there is (2 = sent)
            sender = self_wxid if status == 2 else ("" if talker.endswith("@chatroom") else talker)
        is_self = sender == self_wxid
    return Message(source, sid, talker, sender, is_self, created * 1000, base, sub, content, local_type,
                   server_id or None)  # fmt: skip


def contact_from_v4(row: Sequence[Any], self_wxid: str) -> Contact:
    """A contact row (username, alias, remark, nick_name, local_type, verify_flag) -> Contact.

    local_type 1 = friend, 2 = group, 3 = seen only in a group, 5/6 = WeCom.
    """
    wxid, alias, remark, nickname, local_type, verify = row
    if wxid == self_wxid:
        kind = ContactKind.SELF
    else:
        kind = contact_kind(wxid, is_friend=local_type in (1, 2), verified=bool(verify))
    return Contact(wxid=wxid, alias=alias or "", remark=remark or "", nickname=nickname or "", kind=kind)


def members_from_chat_room(row: Sequence[Any]) -> list[Member]:
    """A chat_room row (username, ext_buffer): ext_buffer is roomdata as on Android and 3.x,
    repeated field 1 = {1: wxid, 2: in-group name}."""
    room, ext_buffer = row
    try:
        items = [dict(fields(v)) for n, v in fields(ext_buffer or b"") if n == 1 and isinstance(v, bytes)]
    except ProtobufError:
        return []  # a damaged blob only costs us the member list
    return [Member(room, _text(i[1]), _text(i.get(2, b""))) for i in items if isinstance(i.get(1), bytes)]


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def account_from_folder(path: Path) -> str | None:
    """`xwechat_files/<wxid>_a1b2/db_storage/message/message_0.db` -> <wxid>."""
    for folder in path.parents:
        if folder.name == "db_storage" and (match := _ACCOUNT_FOLDER.match(folder.parent.name)):
            return match[1]
    return None


class Pc4Db:
    """One account's decrypted message_*.db shards and its contact.db, if found.

    `unread`: the shards and contact.db the scan found but could not open, and why; each is
    named in the summary, as is a shard or chat table that fails when read. No up-front
    `PRAGMA quick_check` (see pc3.Pc3Db._probe): SQLite refuses a file shorter than its header
    says on the first query, here the Name2Id read.
    """

    kind = "pc4-db"

    def __init__(
        self, shards: list[Path], contact: Path | None, self_wxid: str | None, unread: Mapping[Path, str] | None = None
    ) -> None:
        self.shards = sorted(shards, key=lambda p: (len(p.stem), p.stem))
        self.path = self.shards[0].parent
        self.contact = contact
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        unread = dict(unread or {})
        self.tables = self._probe(unread)
        self.shards = list(self.tables)
        self.self_wxid = base.resolve_self(
            self_wxid,
            lambda: account_from_folder(self.shards[0]),
            self._guess_self,
            message=f"cannot tell whose WeChat 4.x history {self.path} is",
            hint="pass --self wxid_… (your wxid: the xwechat_files folder name without its _xxxx tail)",
        )
        for path, why in sorted(unread.items()):
            self.notes.append(unread_note(path, why) if _SHARD.match(path.name) else unread_note(path, why, LOST_NAMES))
        if contact is None and all(_SHARD.match(p.name) for p in unread):
            self.notes.append("no contact.db beside the message databases: contacts keep their wxids as names")

    @property
    def source_key(self) -> str:
        return f"pc4:{self.self_wxid}"

    def _probe(self, unread: dict[Path, str]) -> dict[Path, dict[str, str]]:
        """Each readable shard's chat tables; a shard that fails here joins `unread`, and if none
        is left that is an error."""
        tables = {}
        for shard in self.shards:
            try:
                tables[shard] = self._tables(shard)
            except SourceFormatError as err:
                unread[shard] = damage(shard, cause(err)) or f"damaged or truncated ({cause(err)})"
        if not tables:
            first = min((p for p in unread if _SHARD.match(p.name)), key=lambda p: (len(p.stem), p.stem))
            raise SourceFormatError(f"no message database in {self.path} could be read: {first.name} is "
                                    f"{unread[first]}", hint=advice(unread[first]))  # fmt: skip
        return tables

    def _tables(self, shard: Path) -> dict[str, str]:
        """Chat table -> talker, by md5 of each Name2Id user_name; a table nobody hashes to is noted."""
        users = query(shard, "SELECT user_name FROM Name2Id")
        by_hash = {hashlib.md5(n.encode()).hexdigest(): n for (n,) in users if n}
        names = [t for (t,) in query(shard, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = {t: by_hash.get(t[4:].lower(), "") for t in names if t.startswith("Msg_")}
        orphans = [t for t, talker in tables.items() if not talker]
        if orphans:
            self.notes.append(f"{shard.name}: {len(orphans)} chat tables match no Name2Id user, skipped")
        return {t: talker for t, talker in tables.items() if talker}

    def _guess_self(self) -> str | None:
        """In a private chat every sender but the contact is you."""
        votes: Counter[str] = Counter()
        for shard, tables in self.tables.items():
            for table, talker in tables.items():
                if "@" in talker or talker.startswith("gh_"):
                    continue
                sql = (f"SELECT n.user_name FROM {table} m JOIN Name2Id n ON m.real_sender_id = n.rowid "
                       "WHERE n.user_name != ? LIMIT 50")  # fmt: skip
                try:
                    votes.update(n for (n,) in query(shard, sql, talker))
                except SourceFormatError:
                    continue  # a damaged table is named when its rows are read
        return votes.most_common(1)[0][0] if votes else None

    def account(self) -> Account:
        rows = list(self._names("SELECT nick_name FROM contact WHERE username = ?", self.self_wxid))
        return Account(self.self_wxid, (rows[0][0] if rows else "") or "")

    def contacts(self) -> Iterator[Contact]:
        sql = "SELECT username, alias, remark, nick_name, local_type, verify_flag FROM contact"
        yield from (contact_from_v4(row, self.self_wxid) for row in self._names(sql) if row[0])

    def members(self) -> Iterator[Member]:
        for row in self._names("SELECT username, ext_buffer FROM chat_room"):
            yield from members_from_chat_room(row)

    def _names(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
        return names_rows(self.contact, self.notes, sql, *args)

    def count(self) -> int:
        total = 0
        for shard, tables in self.tables.items():
            for table in tables:
                try:
                    total += query_value(shard, f"SELECT coalesce(max(local_id), 0) FROM {table}")
                except SourceFormatError:
                    continue  # only the progress bar's total: the read names the table
        return total

    def rows(self) -> Iterator[Sequence[Any]]:
        for shard, tables in self.tables.items():
            for table, talker in tables.items():
                yield from self._table_rows(shard, table, talker)

    def _table_rows(self, shard: Path, table: str, talker: str) -> Iterator[Sequence[Any]]:
        """One chat's rows. Where a damaged page stops them (the sort reads the whole table
        first), the rest are read one by one by local_id, and the summary names those that fail."""
        prefix, done = f"{shard.stem}:{talker}:", set()
        try:
            for row in query(shard, _ROWS.format(table=table), prefix, talker):
                done.add(row[0])
                yield row
        except SourceFormatError as err:
            rows, lost = _salvage(shard, table, prefix, talker, done)
            yield from rows
            if lost:
                self.notes.append(f"{shard.name} damaged or truncated ({cause(err)}): in the chat with "
                                  f"{talker}, {lost} not read; {COPY_AGAIN}")  # fmt: skip

    def row_mapper(self) -> RowMapper:
        return partial(message_from_v4, source=self.source_key, self_wxid=self.self_wxid)

    def close(self) -> None:
        pass


def _salvage(shard: Path, table: str, prefix: str, talker: str, done: set[str]) -> tuple[list[Sequence[Any]], str]:
    """A damaged chat table's rows that still read, one at a time by local_id, and what was lost
    ("local_id 4", "local_ids 5–24, 31", "local_ids from 7 on"; "" for nothing)."""
    rows, lost = [], []
    conn = sqlite3.connect(f"file:{shard}?mode=ro", uri=True)

    def seek(x: int) -> int | None:
        return conn.execute(f"SELECT min(local_id) FROM {table} WHERE local_id >= ?", (x,)).fetchone()[0]

    try:
        for local_id, last in _local_ids(conn, table, seek):
            if last is not None:  # ids the damage hides: a run
                lost.append(_run(local_id, last))
            elif f"{prefix}{local_id}" not in done:
                try:
                    rows.append(conn.execute(_ROW.format(table=table), (prefix, talker, local_id)).fetchone())
                except sqlite3.Error:
                    lost.append(str(local_id))
    finally:
        conn.close()
    if not lost:
        return rows, ""
    if lost == ["all"]:
        return rows, "all its messages"
    return rows, (f"local_id {lost[0]}" if len(lost) == 1 and lost[0].isdigit() else f"local_ids {', '.join(lost)}")


def _run(first: int, last: int) -> str:
    """A run of local_ids the damage hides, open-ended where the listing could not reach an end."""
    start, end = first > -(2**63), last < 2**63 - 1
    if start and end:
        return str(first) if first == last else f"{first}–{last}"
    return f"from {first} on" if start else (f"up to {last}" if end else "all")


def _local_ids(conn: sqlite3.Connection, table: str, seek: Callable[[int], int | None]) -> Iterator[tuple[int, Any]]:
    """(local_id, None) for each id listed, (first, last) for a run the damage hides, past which
    the listing resumes where a read reaches again (last = 2**63 - 1: to the end)."""
    first = -(2**63)
    while True:
        try:
            for (local_id,) in conn.execute(f"SELECT local_id FROM {table} WHERE local_id >= ? ORDER BY local_id",
                                            (first,)):  # fmt: skip
                first = local_id + 1
                yield local_id, None
            return
        except sqlite3.Error:
            pass
        try:  # sqlite3 steps a row ahead: the next id may still be listed
            nxt = seek(first)
        except sqlite3.Error:  # the leaf that lists the next ids is damaged itself
            again = resume(first, 2**63 - 1, seek)
            yield first, (2**63 - 1 if again is None else again - 1)
            if again is None:
                return
            first = again
            continue
        if nxt is None:
            return
        yield nxt, None
        first = nxt + 1
