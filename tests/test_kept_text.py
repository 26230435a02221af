"""Lost words: where a database reader cannot rebuild a row's payload (no XML, an LZ4 blob that
does not decompress), it keeps the row's own text, and a quote renders its reply text."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

from conftest import build_android_db, run_cli
from test_pc_sources import HU, ME, QUOTE, ROOM, build_pc3, build_pc4, bytes_extra, lz4_block, messages

from wechat_avatar.render import render

BROKEN_LZ4 = b"\xff" * 40
REPLY = "我没问我爸"


def stored(ws: Path) -> list[tuple[Any, ...]]:
    sql = "SELECT content, text, category, render_status, quote, sender FROM messages ORDER BY id"
    return sqlite3.connect(ws / "chat.db").execute(sql).fetchall()


def test_a_quote_without_its_xml_renders_the_reply() -> None:
    assert render(49, 57, REPLY)[:3] == (REPLY, "quote", "ok")
    assert render(49, 1, "分享的文字")[:3] == ("分享的文字", "app_text", "ok")
    assert render(49, 57, "")[:3] == ("[未知消息]", "quote", "failed")  # no words to keep
    assert render(49, 5, "打工人")[:3] == ("[外部链接]", "link", "failed")  # a placeholder says what it was


def test_pc3_keeps_the_row_text_where_compress_content_fails(tmp_path: Path) -> None:
    rows = [
        (1, 101, 49, 57, 0, 1687360060, HU, REPLY, None, BROKEN_LZ4, None),  # the reply text, its XML unreadable
        (2, 102, 49, 57, 0, 1687360070, ROOM, REPLY, None, lz4_block(QUOTE), bytes_extra(HU)),  # XML beside the text
        (3, 103, 50, 0, 0, 1687360080, HU, "", "通话时长 00:27", BROKEN_LZ4, None),  # the bubble text is enough
        (4, 104, 49, 57, 0, 1687360090, HU, "", None, BROKEN_LZ4, None),  # nothing left to keep
    ]  # fmt: skip
    account = build_pc3(tmp_path, rows)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "read 3, added 3" in result.stdout and "skipped 1 corrupt LZ4 CompressContent" in result.stdout
    assert stored(tmp_path / "ws") == [
        (REPLY, REPLY, "quote", "ok", "", HU),
        (QUOTE, REPLY, "quote", "ok", "??: 我妈说可以", HU),
        ("通话时长 00:27", "[语音通话]通话时长 00:27", "voip", "dropped", "", HU),  # calls: dropped by default
    ]


def test_pc4_keeps_the_row_text(tmp_path: Path) -> None:
    rows = [
        (HU, 201, 244813135921, HU, 1700000000, REPLY, 4),  # a quote whose XML the row never had
        (ROOM, 202, 1, ME, 1700000010, "todo:\n买牛奶", 2),  # your own line: "todo:" is words, not a sender
        (ROOM, 203, 1, HU, 1700000020, f"{HU}:\n好", 4),
    ]
    account = build_pc4(tmp_path, rows)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert stored(tmp_path / "ws") == [
        (REPLY, REPLY, "quote", "ok", "", HU),
        ("todo:\n买牛奶", "todo:\n买牛奶", "text", "ok", "", ME),
        ("好", "好", "text", "ok", "", HU),
    ]


def write_tables(db: Path, folder: Path) -> Path:
    """The tables as a DB browser exports them: one CSV each, a header row."""
    folder.mkdir()
    conn = sqlite3.connect(db)
    for table in ("message", "rcontact", "userinfo"):
        cursor = conn.execute(f"SELECT * FROM {table}")
        with (folder / f"{table}.csv").open("w", encoding="utf-8-sig", newline="") as fh:
            out = csv.writer(fh)
            out.writerow([c[0] for c in cursor.description])
            out.writerows(cursor)
    return folder


def test_android_quote_without_its_xml(tmp_path: Path) -> None:
    db = build_android_db(tmp_path / "EnMicroMsg.db", [
        (1, 301, 822083633, 0, 1700000000000, ROOM, f"{HU}:\n{REPLY}"),
        (2, 302, 822083633, 1, 1700000001000, HU, "我也没问"),
    ])  # fmt: skip
    for given, ws in ((db, tmp_path / "ws-db"), (write_tables(db, tmp_path / "csv"), tmp_path / "ws-csv")):
        result = run_cli("ingest", given, "--workspace", ws)
        assert result.returncode == 0, result.stderr
        assert [(m["text"], m["category"], m["status"], m["sender"]) for m in messages(ws)] == [
            (REPLY, "quote", "ok", HU), ("我也没问", "quote", "ok", ME)]  # fmt: skip
