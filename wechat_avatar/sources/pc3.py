"""PC WeChat 3.x, decrypted: `MicroMsg.db` (Contact, ChatRoom) beside `MSG0.db … MSGn.db` (MSG).

Reference §2. CreateTime is in seconds; a type-49 payload is LZ4-block-compressed in
CompressContent when StrContent is empty; a group member's wxid is item type 1 of the
BytesExtra protobuf; a call is a status code with its bubble text in DisplayContent. The
account is the folder above `Msg` (`WeChat Files/<wxid>/Msg/…`) unless `--self` says.
Source key `pc3:<wxid>`, source_id `<shard>:<localId>` (e.g. `MSG0:406`): stable as long
as the decrypted files are, and unique across shards, whose localIds each start at 1.
An MSG row and what it becomes::

    ("MSG0:406", MsgSvrID=77310, Type=49, SubType=57, IsSender=0, CreateTime=1687360045,
     StrTalker="123@chatroom", StrContent=b"", DisplayContent=None, CompressContent=lz4(b"<msg><appmsg>…"),
     BytesExtra=b"\\n\\x04\\x08\\x00\\x10\\x00\\x1a\\x0c\\x08\\x01\\x12\\x06wxid_a")
    -> Message(source="pc3:wxid_me", source_id="MSG0:406", chat_id="123@chatroom", sender="wxid_a",
               is_self=False, timestamp_ms=1687360045000, base_type=49, sub_type=57, content="<msg><appmsg>…",
               source_type=49, server_id=77310)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import lz4.block

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message, contact_kind
from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources import base
from wechat_avatar.sources.base import BadRecord, ChunkRows, RowMapper, decode_text, query, query_value, roomdata_names
from wechat_avatar.sources.damage import COPY_AGAIN, LOST_NAMES, advice, cause, damage, names_rows, resume, unread_note
from wechat_avatar.sources.protobuf import ProtobufError, fields, skip, varint

SYSTEM_TYPES = frozenset({10000, 10002})
_LIST_SEPARATOR = re.compile(r"\^G|\x07")  # PyWxDump splits on "^G"; the byte may also be a raw BEL
_SHARD = re.compile(r"^(?:de_)?MSG(\d*)\.db$", re.IGNORECASE)
_ROWS = (
    "SELECT ? || localId, MsgSvrID, Type, SubType, IsSender, CreateTime, StrTalker, CAST(StrContent AS BLOB), "
    "CASE WHEN Type = 50 THEN CAST(DisplayContent AS BLOB) END, "
    "CASE WHEN Type = 49 OR StrContent IS NULL OR StrContent = '' THEN CompressContent END, "
    "CASE WHEN IsSender = 0 AND StrTalker LIKE '%@chatroom' THEN BytesExtra END "
    "FROM MSG WHERE localId >= ? AND localId <= ? ORDER BY localId"
)
_ROW = _ROWS.replace("localId >= ? AND localId <= ? ORDER BY localId", "localId = ?")  # one row: no step past it
CHUNK_ROWS = 25_000  # localIds per chunk: a worker's share
MAX_GAPS = 100  # damaged rows stepped over in one chunk before the rest of it is given up


def lz4_text(blob: bytes) -> str:
    """CompressContent: an LZ4 block without its size; WeChat pads it with NULs."""
    for factor in (8, 12):  # PyWxDump assumes at most 256x; a long quote chain can need more
        try:
            raw = lz4.block.decompress(blob, uncompressed_size=len(blob) << factor)
            break
        except lz4.block.LZ4BlockError:
            continue
    else:
        raise BadRecord("corrupt LZ4 CompressContent")
    return decode_text(raw.rstrip(b"\x00"))[0]


def sender_from_bytes_extra(blob: bytes | None) -> str:
    """Item type 1 of BytesExtra {3: [{1: type, 2: value}]}; WeChatMsg drops a ':…' tail.

    It runs for a third of all rows: items are skipped by their length, not decoded.
    """
    if not blob:
        raise BadRecord("group message without BytesExtra")
    try:
        pos, end = 0, len(blob)
        while pos < end:
            key, pos = varint(blob, pos)
            if key & 7 != 2:  # only the length-delimited fields can hold the item
                pos = skip(blob, pos, key & 7)
                continue
            size, pos = varint(blob, pos)
            if key >> 3 == 3 and blob[pos : pos + 2] == b"\x08\x01":  # an item whose type is 1
                parts = dict(fields(blob[pos : pos + size]))
                if isinstance(parts.get(2), bytes):
                    return parts[2].decode("utf-8", "replace").split(":", 1)[0]
            pos += size
        if pos > end:
            raise ProtobufError("truncated message")
    except ProtobufError:
        raise BadRecord("broken BytesExtra protobuf") from None
    raise BadRecord("BytesExtra names no sender")


def message_from_msg(row: Sequence[Any], source: str, self_wxid: str) -> Message:
    """One MSG row, columns as in _ROWS -> Message (raises BadRecord)."""
    sid, server_id, base, sub, is_sender, created, talker, content, display, compressed, extra = row
    if not talker:
        raise BadRecord("no StrTalker")
    if not isinstance(base, int) or not isinstance(created, int):
        raise BadRecord("non-numeric Type or CreateTime")
    try:
        content = content.decode() if content else ""
    except UnicodeDecodeError:
        content = decode_text(content)[0]
    # the payload is in CompressContent when StrContent is empty, or (type 49) holds only the
    # reply text; where it does not decompress, the row's own text is kept
    if compressed and (not content or (base == 49 and not content.lstrip().startswith("<"))):
        try:
            content = lz4_text(compressed) or content
        except BadRecord:
            if not content and not (base == 50 and display):
                raise
    if base == 50 and display:  # the status code says less than the bubble text ("通话时长 00:27")
        content = decode_text(display)[0]
    is_self = is_sender == 1
    if base in SYSTEM_TYPES:
        sender = ""
    elif is_self:
        sender = self_wxid
    elif talker.endswith("@chatroom"):
        sender = sender_from_bytes_extra(extra)
    else:
        sender = talker
    return Message(source, sid, talker, sender, is_self, created * 1000, base, sub or 0, content, base,
                   server_id or None)  # fmt: skip


def contact_from_contact(row: Sequence[Any], self_wxid: str) -> Contact:
    """A Contact row (UserName, Alias, Remark, NickName, Type, VerifyFlag, Reserved1) -> Contact."""
    wxid, alias, remark, nickname, rtype, verify, joined = row
    if wxid == self_wxid:
        kind = ContactKind.SELF
    else:  # Reserved1 1 = a friend or a joined group, 0 = seen only in a group
        friend = joined == 1 if joined is not None else bool((rtype or 0) & 1)
        kind = contact_kind(wxid, is_friend=friend, verified=bool(verify))
    return Contact(wxid=wxid, alias=alias or "", remark=remark or "", nickname=nickname or "", kind=kind)


def members_from_chatroom(row: Sequence[Any]) -> list[Member]:
    """A ChatRoom row (ChatRoomName, UserNameList, RoomData) -> its members with in-group names."""
    room, user_list, room_data = row
    names = roomdata_names(room_data)
    return [Member(room, w, names.get(w, "")) for w in _LIST_SEPARATOR.split(user_list or "") if w]


def account_wxid(path: Path) -> str | None:
    """`…/WeChat Files/<wxid>/Msg/Multi/MSG0.db` -> <wxid>."""
    for folder in path.parents:
        if folder.name.lower() == "msg" and folder.parent.name:
            return folder.parent.name
        if folder.parent.name.lower() == "wechat files":
            return folder.name
    return None


class Pc3Db:
    """One account's decrypted MSG shards, and its MicroMsg.db if it was found beside them.

    `unread`: the shards and MicroMsg.db the scan found but could not open, and why; each is
    named in the summary, as is a shard that fails when read (see ShardRange.read).
    """

    kind = "pc3-db"

    def __init__(
        self, shards: list[Path], micromsg: Path | None, self_wxid: str | None, unread: Mapping[Path, str] | None = None
    ) -> None:
        self.shards = sorted(shards, key=shard_number)
        self.path = self.shards[0].parent
        self.micromsg = micromsg
        self.skipped: Counter[str] = Counter()
        self.notes: list[str] = []
        unread = dict(unread or {})
        self.bounds = self._probe(unread)
        self.shards = list(self.bounds)
        self.self_wxid = base.resolve_self(
            self_wxid,
            lambda: account_wxid(self.shards[0]),
            message=f"cannot tell whose PC history {self.path} is",
            hint="pass --self wxid_… (your wxid is the folder name under WeChat Files)",
        )
        for path, why in sorted(unread.items(), key=lambda item: shard_number(item[0])):
            self.notes.append(unread_note(path, why) if _SHARD.match(path.name) else unread_note(path, why, LOST_NAMES))
        if micromsg is None and all(_SHARD.match(p.name) for p in unread):
            self.notes.append(f"no MicroMsg.db beside {self.shards[0].name}: contacts and groups keep their wxids "
                              "as names; ingest MicroMsg.db too to name them")  # fmt: skip

    def _probe(self, unread: dict[Path, str]) -> dict[Path, tuple[Any, Any, int | None]]:
        """Each shard's (min localId, max localId, rows), read up front. Where counting meets a
        damaged page, the shard is still read from its first row (rows None); one whose first row
        cannot be reached joins `unread`, and if no shard is left that is an error.

        No `PRAGMA quick_check`: it reads every page of every table and index (0.13 s for a 64 MB,
        250k-message shard with the file cached, about 5 % of its ingest; more on real shards,
        with their indexes, read cold), and what it finds either costs us nothing (an index, the
        freelist) or is found anyway: SQLite refuses a file shorter than its header says on the
        first query, and the rest (a damaged leaf or overflow page, a cut file whose header does
        not say its size) fails in ShardRange.read, which keeps every row that reads and names
        the localIds that do not. Refusing the shard up front would lose those rows too.
        """
        bounds: dict[Path, tuple[Any, Any, int | None]] = {}
        for shard in self.shards:
            try:
                [bounds[shard]] = query(shard, "SELECT min(localId), max(localId), count(*) FROM MSG")
                continue
            except SourceFormatError as err:
                why = damage(shard, cause(err)) or f"damaged or truncated ({cause(err)})"
            # a damaged page somewhere: read from the first row on (the read names what it cannot),
            # taking the ids as dense, up to the last if the way to it reads
            low, high = (_edge(shard, f"{end}(localId)") for end in ("min", "max"))
            if isinstance(low, int):
                bounds[shard] = (low, high, None)
            else:
                unread[shard] = why
        if not bounds:
            first = min((p for p in unread if _SHARD.match(p.name)), key=shard_number)
            raise SourceFormatError(f"no MSG database in {self.path} could be read: {first.name} is {unread[first]}",
                                    hint=advice(unread[first]))  # fmt: skip
        return bounds

    @property
    def source_key(self) -> str:
        return f"pc3:{self.self_wxid}"

    def account(self) -> Account:
        sql = "SELECT NickName FROM Contact WHERE UserName = ?"
        rows = list(self._names(sql, self.self_wxid))
        return Account(self.self_wxid, (rows[0][0] if rows else "") or "")

    def contacts(self) -> Iterator[Contact]:
        sql = "SELECT UserName, Alias, Remark, NickName, Type, VerifyFlag, Reserved1 FROM Contact"
        for row in self._names(sql):
            if row[0]:
                yield contact_from_contact(row, self.self_wxid)

    def members(self) -> Iterator[Member]:
        for row in self._names("SELECT ChatRoomName, UserNameList, RoomData FROM ChatRoom"):
            yield from members_from_chatroom(row)

    def _names(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]:
        return names_rows(self.micromsg, self.notes, sql, *args)

    def count(self) -> int:
        return sum(high or 0 for _, high, _ in self.bounds.values())

    def rows(self) -> Iterator[Sequence[Any]]:
        for chunk in self.chunks():
            yield from chunk.rows()

    def chunks(self) -> list[ShardRange]:
        """Each shard in runs of CHUNK_ROWS localIds (WeChat numbers them 1, 2, …; a shard whose
        ids are sparse is one chunk)."""
        chunks = []
        for shard, (low, high, n) in self.bounds.items():
            dense = isinstance(low, int) and isinstance(high, int) and (n is None or high - low < 2 * n)
            step = CHUNK_ROWS if dense else 2**64
            inner = range(low + step - 1, high, step) if step < 2**64 else []
            bounds = [low - 1 if isinstance(low, int) else -(2**63), *inner, 2**63 - 1]
            last = high if isinstance(high, int) else None
            chunks += [ShardRange(shard, lo, hi, last) for lo, hi in pairwise(bounds)]
        return chunks

    def row_mapper(self) -> RowMapper:
        return partial(message_from_msg, source=self.source_key, self_wxid=self.self_wxid)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ShardRange:
    """The MSG rows of one shard with lo < localId <= hi, read in a worker process (a Chunk)."""

    shard: Path
    lo: int
    hi: int
    last: int | None = None  # the shard's highest localId, if known: where the range really ends

    def rows(self, first: int | None = None) -> Iterator[Sequence[Any]]:
        """The rows from localId `first` (the range's own start if None) to the range's end."""
        first = self.lo + 1 if first is None else first
        return query(self.shard, _ROWS, f"{shard_name(self.shard)}:", first, self.hi)

    def read(self) -> ChunkRows:
        """The rows, past any that a damaged page hides; each gap is one note naming its localIds.

        A row whose overflow page is gone is stepped over; past a damaged leaf, the read resumes
        at the first row whose leaf reads."""
        rows: list[Sequence[Any]] = []
        gaps: list[tuple[int, int | None, str]] = []  # (first, last or None for "to the end", why)
        first = self.lo + 1  # the first localId not read yet
        for _ in range(MAX_GAPS):
            try:
                for row in self.rows(first):
                    rows.append(row)
                break
            except SourceFormatError as err:
                why = cause(err)
            if rows and _local_id(rows[-1]) >= first:
                first = _local_id(rows[-1]) + 1
            # sqlite3 steps a row ahead: the failing row is `first`'s or the next; each is read alone
            try:
                bad = self._first_from(first)
            except SourceFormatError:  # the leaf that lists the next rows is damaged itself
                resume = self._resume(first)
                _add_gap(gaps, first, None if resume is None else resume - 1, why)
                if resume is None:
                    break
                first = resume
                continue
            if bad is None:
                break
            try:
                rows += list(query(self.shard, _ROW, f"{shard_name(self.shard)}:", bad))
            except SourceFormatError:
                _add_gap(gaps, bad, bad, why)
            first = bad + 1
        else:
            _add_gap(gaps, first, None, f"more than {MAX_GAPS} damaged places")
        return ChunkRows(rows, Counter(), Counter(self._gap(*gap) for gap in gaps))

    def _first_from(self, first: int) -> int | None:
        """The first localId from `first` on in the range; raises where the way to it is damaged."""
        sql = "SELECT min(localId) FROM MSG WHERE localId >= ? AND localId <= ?"
        return query_value(self.shard, sql, first, self.hi)

    def _resume(self, first: int) -> int | None:
        return resume(first, self.hi if self.last is None else min(self.hi, self.last), self._first_from)

    def _gap(self, first: int, last: int | None, why: str) -> str:
        end = self.hi if self.last is None else min(self.hi, self.last)
        last = end if last is None else last
        if last >= 2**63 - 1:
            lost = f"localIds from {first} on"
        else:
            lost = f"localId {first}" if first == last else f"localIds {first}–{last}"
        # braces escaped: ingest fills chunk notes in with str.format
        note = f"{self.shard.name} damaged or truncated ({why}): {lost} not read; {COPY_AGAIN}"
        return note.replace("{", "{{").replace("}", "}}")


def _add_gap(gaps: list[tuple[int, int | None, str]], first: int, last: int | None, why: str) -> None:
    """Record localIds first..last as not read, joined to the gap just before if they follow it."""
    if gaps and gaps[-1][1] is not None and gaps[-1][1] + 1 == first:
        first = gaps.pop()[0]
    gaps.append((first, last, why))


def _edge(shard: Path, agg: str) -> Any:
    """min(localId) or max(localId), None where the way to it is damaged."""
    try:
        return query_value(shard, f"SELECT {agg} FROM MSG")
    except SourceFormatError:
        return None


def _local_id(row: Sequence[Any]) -> int:
    """The localId back out of a row's "MSG0:406" source id."""
    return int(str(row[0]).rpartition(":")[2])


def shard_number(path: Path) -> int:
    match = _SHARD.match(path.name)
    return int(match[1] or 0) if match else 0


def shard_name(path: Path) -> str:
    """MSG0.db and PyWxDump's decrypted copy de_MSG0.db are the same shard: 'MSG0'."""
    return f"MSG{shard_number(path)}"
