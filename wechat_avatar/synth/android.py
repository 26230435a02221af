"""Write a synthetic Android export: encrypted EnMicroMsg.db, shared_prefs, CSVs, manifest.

Layout of OUT (what a real phone dump plus the seed's "DB Browser → CSV" route gives):

    EnMicroMsg.db                      SQLCipher-1, key = md5(IMEI + uin)[:7]
    shared_prefs/system_config_prefs.xml   <int name="default_uin" …/>
    shared_prefs/auth_info_key_prefs.xml   <int name="_auth_uin" …/>
    csv/message.csv (UTF-8 with BOM), csv/rcontact.csv, csv/userinfo.csv, csv/chatroom.csv
    synth.json                         what made it, and what was planted where

Messages are streamed: generated, inserted and written to CSV in chunks inside one
transaction, so memory stays flat however many messages are asked for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import sqlcipher3

from wechat_avatar.android_crypto import DEFAULT_IMEI, android_key, connect
from wechat_avatar.errors import UsageError
from wechat_avatar.synth import schema
from wechat_avatar.synth.facts import facts_manifest
from wechat_avatar.synth.history import Event, History
from wechat_avatar.synth.kinds import ANDROID_TYPE, ODD_NAMES, SYSTEM_KINDS
from wechat_avatar.synth.persona import Cast, make_cast
from wechat_avatar.synth.pii import CANARIES
from wechat_avatar.synth.tables import chatroom_rows, rcontact_rows, userinfo_rows

DEFAULT_UIN = "1727374951"
CHUNK = 5000  # rows per executemany / progress tick
_CONTENT = schema.columns("message").index("content")
# lvbuffer is an opaque TLV blob in real rows; two fixed shapes are enough for readers to skip.
LVBUF_SENT = bytes.fromhex("7b000000000000000000000000000000007d")
LVBUF_RECV = bytes.fromhex("7b0000000100000000000000000000007d")


@dataclass(frozen=True)
class SynthResult:
    out: Path
    db_path: Path
    csv_dir: Path
    prefs_dir: Path
    manifest_path: Path
    messages: int
    self_wxid: str
    key: str


def synth_android(
    out: Path,
    messages: int = 5000,
    seed: int = 0,
    imei: str = DEFAULT_IMEI,
    uin: str = DEFAULT_UIN,
    progress: Callable[[int], None] | None = None,
    leave_out_newest: int = 0,
) -> SynthResult:
    """Generate a deterministic export of `messages` messages into `out` (see module docstring);
    `leave_out_newest`: the same history exported that many messages earlier."""
    if messages < 0 or not 0 <= leave_out_newest <= messages:
        raise UsageError(f"messages must be ≥ 0 and leave_out_newest within them, got {messages}, {leave_out_newest}")
    out = Path(out)
    csv_dir, prefs_dir, db_path = out / "csv", out / "shared_prefs", out / "EnMicroMsg.db"
    for folder in (csv_dir, prefs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    db_path.unlink(missing_ok=True)  # SQLCipher would otherwise append to an old export
    rng = random.Random(seed)
    cast = make_cast(rng)
    history = History(cast, messages, rng, stop=messages - leave_out_newest)
    key = android_key(imei, uin)
    _write_db(db_path, key, cast, uin, history, csv_dir, progress)
    _write_prefs(prefs_dir, uin)
    manifest_path = out / "synth.json"
    made = manifest(cast, history, seed=seed, imei=imei, uin=uin, key=key)
    manifest_path.write_text(json.dumps(made, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return SynthResult(out, db_path, csv_dir, prefs_dir, manifest_path, history.count, cast.me.wxid, key)


def _write_db(
    db_path: Path,
    key: str,
    cast: Cast,
    uin: str,
    history: History,
    csv_dir: Path,
    progress: Callable[[int], None] | None,
) -> None:
    conn = connect(db_path, key)
    conn.isolation_level = None  # we issue BEGIN/COMMIT ourselves: one transaction for everything
    try:
        for pragma in ("journal_mode = MEMORY", "synchronous = OFF", "cache_size = -16000"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        for table in schema.TABLES:
            conn.execute(schema.create_sql(table))
        for sql in schema.INDEXES:  # with the tables, like WeChat: the schema pages stay at the front
            conn.execute(sql)
        static = {
            "rcontact": rcontact_rows(cast),
            "userinfo": userinfo_rows(cast, uin),
            "chatroom": chatroom_rows(cast),
        }
        for table, rows in static.items():
            conn.executemany(schema.insert_sql(table), rows)
            _write_csv(csv_dir / f"{table}.csv", schema.columns(table), rows, bom=False)
        _write_messages(conn, csv_dir / "message.csv", history, progress)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _write_messages(
    conn: sqlcipher3.Connection, path: Path, history: History, progress: Callable[[int], None] | None
) -> None:
    insert = schema.insert_sql("message")
    rows = map(android_row, history.events())
    # DB Browser for SQLite writes a BOM when asked to; the other CSVs go without (both occur).
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(schema.columns("message"))
        while chunk := list(islice(rows, CHUNK)):
            conn.executemany(insert, chunk)
            writer.writerows(map(_message_cells, chunk))
            if progress is not None:
                progress(len(chunk))


def android_row(e: Event) -> tuple:
    """One `message` row (column order = schema.MESSAGE); others' group lines carry "wxid:\\n"."""
    content = e.content
    if e.member_count and not e.is_send and e.kind not in SYSTEM_KINDS:
        content = f"{e.sender}:\n{content}"
    reserved = None
    if e.member_count:  # Android keeps a <msgsource> blob on group rows
        reserved = f"<msgsource><membercount>{e.member_count}</membercount></msgsource>"
    return (
        e.local_id,
        e.server_id,
        ANDROID_TYPE[e.kind],
        2 if e.is_send else 3,
        int(e.is_send),
        int(e.show_timer),
        e.created_ms,
        e.talker,
        content,
        e.img_path,
        reserved,
        LVBUF_SENT if e.is_send else LVBUF_RECV,
        None,
        None,
        e.talker_id,
        None,
        -1,
        None,
        e.seq,
        0,
        None,
        None,
    )


def _message_cells(row: tuple) -> tuple:
    """CSV cells: BLOBs as lower-case hex, except `content`, which stays text (bad bytes -> U+FFFD)."""
    content = row[_CONTENT]
    if type(content) is bytes:
        row = (*row[:_CONTENT], content.decode("utf-8", "replace"), *row[_CONTENT + 1 :])
    return tuple(v.hex() if type(v) is bytes else v for v in row)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[tuple], bom: bool) -> None:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.writer(fh)  # RFC 4180: CRLF rows, quotes only where needed, NULL -> empty
        writer.writerow(header)
        writer.writerows(tuple(v.hex() if type(v) is bytes else v for v in row) for row in rows)


def _write_prefs(prefs_dir: Path, uin: str) -> None:
    """The two shared_prefs files readers take the uin from, in Android's XML shape."""
    head = "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n<map>\n"
    auth_key = hashlib.md5(f"auth{uin}".encode()).hexdigest()
    (prefs_dir / "system_config_prefs.xml").write_text(
        f'{head}    <int name="default_uin" value="{uin}" />\n</map>\n', encoding="utf-8"
    )
    (prefs_dir / "auth_info_key_prefs.xml").write_text(
        f'{head}    <boolean name="key_auth_info_prefs_created" value="true" />\n'
        f'    <int name="key_auth_update_version" value="671105075" />\n'
        f'    <int name="_auth_uin" value="{uin}" />\n'
        f'    <string name="_auth_key">{auth_key}</string>\n</map>\n',
        encoding="utf-8",
    )


def manifest(cast: Cast, history: History, **made_with: object) -> dict[str, object]:
    """Everything a test or a person needs to know about this export without decrypting it."""
    return {
        **made_with,
        "messages": history.count,
        "self_wxid": cast.me.wxid,
        "self_nickname": cast.me.nickname,
        "self_alias": cast.me.alias,
        "counts_by_type": {str(t): n for t, n in sorted(history.type_counts.items())},
        "counts_by_kind": dict(sorted(history.kind_counts.items())),
        "chats": len(history.talkers),
        "groups": len(cast.groups),
        "friends": len(cast.friends),
        "strangers": len(cast.strangers),
        "officials": len(cast.officials),
        "contacts": len(rcontact_rows(cast)),
        "time_range_ms": [history.first_ms, history.last_ms],
        "planted_pii": list(history.planted),
        "canaries": list(CANARIES),
        "facts": facts_manifest(),  # the persona's life (synth/facts.py) and how often each came up
        "fact_mentions": dict(history.facts.mentions),
        "probes": history.probes(),
        "odd_rows": {ODD_NAMES[kind]: ids for kind, ids in history.odd.items()},  # msgIds
        "blob_csv_encoding": "lowercase hex; message.content is always text (invalid UTF-8 -> U+FFFD)",
    }
