"""PC databases that are cut short, still encrypted or damaged mid-file, beside good ones: every
file is read whole or named in the summary with why, and an account none of whose message
databases opens is a one-line error. Synthetic shards (two per account) damaged as a bad
copy or a half-done decryption leaves them, and hand-built ones damaged at a known page."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from conftest import run_cli
from test_bad_input import count, fails
from test_pc_sources import HU, build_pc3, build_pc4

PAGE = 4096


def source_ids(ws: Path) -> list[str]:
    return [sid for (sid,) in sqlite3.connect(ws / "chat.db").execute("SELECT source_id FROM messages ORDER BY id")]


def msg_rows(shard: Path) -> int:
    return sqlite3.connect(shard).execute("SELECT count(*) FROM MSG").fetchone()[0]


def cut(path: Path, share: float) -> None:
    """Keep the first `share` of the file, in whole pages: a copy that stopped half-way."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share) // PAGE * PAGE])


def hide_size(path: Path) -> None:
    """Make the header's page count stale (as older writers leave it): SQLite then sizes the
    file by its length, opens a cut copy, and fails only where a missing page is needed."""
    with path.open("r+b") as fh:
        fh.seek(92)
        fh.write(b"\xff\xff\xff\xff")


def pc3_copy(formats: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the synthetic PC 3.x account folder: (the folder to ingest, its Multi/ folder)."""
    root = Path(shutil.copytree(formats["pc3"].out, tmp_path / "pc3"))
    account = root / formats["pc3"].path.relative_to(formats["pc3"].out)
    return account, account / "Msg" / "Multi"


def truncated(path: Path, whole: int) -> str:
    size = path.stat().st_size
    return f"truncated: {size:,} of {whole:,} bytes ({size * 100 // whole} %)"


def test_pc3_shard_cut_or_encrypted_beside_a_good_one_is_named(formats: dict[str, Any], tmp_path: Path) -> None:
    account, multi = pc3_copy(formats, tmp_path)
    good = multi.with_name("MSG1.good")
    shutil.copy(multi / "MSG1.db", good)
    whole, first = good.stat().st_size, msg_rows(multi / "MSG0.db")
    noise = random.Random(1).randbytes(whole)
    for name, spoil in (
        ("75", lambda p: cut(p, 0.75)),
        ("90", lambda p: cut(p, 0.9)),
        ("enc", lambda p: p.write_bytes(noise)),
    ):
        shutil.copy(good, multi / "MSG1.db")
        spoil(multi / "MSG1.db")
        why = "still encrypted" if name == "enc" else truncated(multi / "MSG1.db", whole)
        ws = tmp_path / f"ws-{name}"
        result = run_cli("ingest", account, "--workspace", ws)
        assert result.returncode == 0, result.stderr
        assert f"note: MSG1.db not read, {why}: its messages are missing; " in result.stdout, result.stdout
        assert f"read {first}, added {first}" in result.stdout
        assert count(ws) == first and all(sid.startswith("MSG0:") for sid in source_ids(ws))
    # the good copy back: the rest comes in, nothing twice, nothing lost
    shutil.copy(good, multi / "MSG1.db")
    result = run_cli("ingest", account, "--workspace", ws)
    assert result.returncode == 0 and "not read" not in result.stdout, result.stdout
    assert f"added {formats['pc3'].messages - first}" in result.stdout
    assert count(ws) == formats["pc3"].messages


def test_pc3_no_shard_opens_is_an_error(formats: dict[str, Any], tmp_path: Path) -> None:
    account, multi = pc3_copy(formats, tmp_path)
    alone = tmp_path / "alone" / "MSG1.db"
    alone.parent.mkdir()
    shutil.copy(multi / "MSG1.db", alone)
    cut(alone, 0.75)
    why = truncated(alone, (multi / "MSG1.db").stat().st_size)
    for given in (alone, alone.parent):  # handed over alone, or the folder holding it
        fails(run_cli("ingest", given, "--workspace", tmp_path / "ws"), 2, f"MSG1.db is {why}", "copy it again")
    ws = tmp_path / "ws"
    assert run_cli("ingest", account, "--workspace", ws).returncode == 0
    for shard in ("MSG0.db", "MSG1.db"):
        cut(multi / shard, 0.9)
    fails(run_cli("ingest", account, "--workspace", ws), 2, "MSG0.db is truncated", "1 more in")
    assert count(ws) == formats["pc3"].messages  # what was stored stays


def readable(shard: Path, rows: int) -> set[str]:
    """The source ids of the rows 1..rows SQLite can still read, one by one."""
    conn, ids = sqlite3.connect(f"file:{shard}?mode=ro", uri=True), set()
    for local_id in range(1, rows + 1):
        try:
            if conn.execute("SELECT * FROM MSG WHERE localId = ?", (local_id,)).fetchall():
                ids.add(f"MSG1:{local_id}")
        except sqlite3.DatabaseError:
            continue
    return ids


def msg1_ids(ws: Path) -> set[str]:
    return {sid for sid in source_ids(ws) if sid.startswith("MSG1:")}


def test_pc3_shard_cut_whose_header_does_not_say_its_size(formats: dict[str, Any], tmp_path: Path) -> None:
    """With a stale header SQLite opens a cut copy: the rows before the cut are read, the rest named."""
    account, multi = pc3_copy(formats, tmp_path)
    shard = multi / "MSG1.db"
    rows = msg_rows(shard)
    hide_size(shard)
    cut(shard, 0.75)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    got = msg1_ids(tmp_path / "ws")
    assert got == readable(shard, rows) and len(got) > rows / 2  # every row that reads, and most do
    lost = max(int(sid[5:]) for sid in got) + 1
    assert (f"note: MSG1.db damaged or truncated (database disk image is malformed): localIds from {lost} on "
            "not read") in result.stdout, result.stdout  # fmt: skip


def test_pc3_damaged_page_mid_shard_costs_only_its_rows(formats: dict[str, Any], tmp_path: Path) -> None:
    """A page in the middle lost (a bad sector, a half-done decryption): the rows on it are
    named, every other row is read, past the hole."""
    account, multi = pc3_copy(formats, tmp_path)
    shard = multi / "MSG1.db"
    rows = msg_rows(shard)
    break_page(shard, middle_leaf(shard, ["MSG"]))
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    got = msg1_ids(tmp_path / "ws")
    assert got == readable(shard, rows)
    missing = sorted(set(range(1, rows + 1)) - {int(sid[5:]) for sid in got})
    assert missing == list(range(missing[0], missing[-1] + 1)) and len(missing) < rows / 10  # one leaf's rows
    assert (f"note: MSG1.db damaged or truncated (database disk image is malformed): localIds {missing[0]}–"
            f"{missing[-1]} not read") in result.stdout, result.stdout  # fmt: skip


def append_long(db: Path, insert: str, row: tuple[Any, ...]) -> int:
    """Insert one 20 kB row; returns the second of the overflow pages its text took (a fresh
    database has no free pages, so they go at the end of the file, in order)."""
    conn = sqlite3.connect(db)
    first = conn.execute("PRAGMA page_count").fetchone()[0] + 1
    conn.execute(insert, row)
    conn.commit()
    assert conn.execute("PRAGMA page_count").fetchone()[0] > first + 1  # the leaf had room: only overflow pages
    conn.close()
    return first + 1


def middle_leaf(path: Path, tables: list[str]) -> int:
    """The page nearest the middle of the file that holds rows of one of `tables` (so that breaking it
    costs rows whatever the synthetic history put there)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        marks = ", ".join("?" * len(tables))
        leaves = [n for (n,) in conn.execute(
            f"SELECT pageno FROM dbstat WHERE name IN ({marks}) AND pagetype = 'leaf'", tables)]  # fmt: skip
    middle = path.stat().st_size // PAGE // 2
    return min(leaves, key=lambda n: abs(n - middle))


def break_page(path: Path, page: int) -> None:
    """Zero one page (an overflow page's chain then ends before its text does)."""
    with path.open("r+b") as fh:
        fh.seek((page - 1) * PAGE)
        fh.write(b"\x00" * PAGE)


def test_pc3_row_that_fails_mid_read_is_stepped_over_and_named(tmp_path: Path) -> None:
    """The damage only the read itself meets: a long message lost one of its overflow pages."""
    row = lambda i, text: (i, 100 + i, 1, 0, 0, 1687360000 + i, HU, text, None, None, None)  # noqa: E731
    account = build_pc3(tmp_path, [row(i, f"第{i}句") for i in range(1, 6)])
    shard = account / "Msg" / "Multi" / "MSG0.db"
    insert = ("INSERT INTO MSG (localId, MsgSvrID, Type, SubType, IsSender, CreateTime, StrTalker, StrContent, "
              "DisplayContent, CompressContent, BytesExtra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip
    page = append_long(shard, insert, row(6, "长" * 7000))
    conn = sqlite3.connect(shard)
    conn.executemany(insert, [row(i, f"第{i}句") for i in range(7, 11)])
    conn.commit()
    conn.close()
    break_page(shard, page)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "note: MSG0.db damaged or truncated (database disk image is malformed): localId 6 not read" in result.stdout
    assert source_ids(tmp_path / "ws") == [f"MSG0:{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9, 10)]


def test_pc3_names_database_that_does_not_open(formats: dict[str, Any], tmp_path: Path) -> None:
    account, _ = pc3_copy(formats, tmp_path)
    micromsg = account / "Msg" / "MicroMsg.db"
    micromsg.write_bytes(random.Random(2).randbytes(micromsg.stat().st_size))
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert ("note: MicroMsg.db not read, still encrypted: contacts and groups keep their wxids as names "
            "(no remarks, nicknames, group names or members)") in result.stdout  # fmt: skip
    assert "no MicroMsg.db beside" not in result.stdout
    assert count(tmp_path / "ws") == formats["pc3"].messages


def pc4_copy(formats: dict[str, Any], tmp_path: Path) -> Path:
    root = Path(shutil.copytree(formats["pc4"].out, tmp_path / "pc4"))
    return root / formats["pc4"].path.relative_to(formats["pc4"].out)


def test_pc4_message_and_contact_databases_that_do_not_open(formats: dict[str, Any], tmp_path: Path) -> None:
    account = pc4_copy(formats, tmp_path)
    storage = account / "db_storage"
    first = sum(
        sqlite3.connect(storage / "message" / "message_0.db").execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for (t,) in sqlite3.connect(storage / "message" / "message_0.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'Msg_%'"
        )
    )
    cut(storage / "message" / "message_1.db", 0.75)
    cut(storage / "contact" / "contact.db", 0.5)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "note: message_1.db not read, truncated:" in result.stdout, result.stdout
    assert "note: contact.db not read, truncated:" in result.stdout and "keep their wxids as names" in result.stdout
    assert count(tmp_path / "ws") == first
    cut(storage / "message" / "message_0.db", 0.5)
    fails(run_cli("ingest", account, "--workspace", tmp_path / "ws2"), 2, "message_0.db is truncated", "1 more in")


def test_pc4_row_that_fails_mid_read_is_stepped_over_and_named(tmp_path: Path) -> None:
    row = lambda i, text: (HU, 200 + i, 1, HU, 1700000000 + i, text, 4)  # noqa: E731
    account = build_pc4(tmp_path, [row(i, f"第{i}句") for i in range(1, 4)])
    shard = account / "db_storage" / "message" / "message_0.db"
    table = "Msg_" + hashlib.md5(HU.encode()).hexdigest()
    insert = (f"INSERT INTO {table} (server_id, local_type, real_sender_id, create_time, status, message_content, "
              "sort_seq) VALUES (?, 1, 2, ?, 4, ?, ?)")  # fmt: skip
    page = append_long(shard, insert, (204, 1700000004, "长" * 7000, 1700000004000))
    conn = sqlite3.connect(shard)
    conn.executemany(insert, [(200 + i, 1700000000 + i, f"第{i}句", (1700000000 + i) * 1000) for i in range(5, 8)])
    conn.commit()
    conn.close()
    break_page(shard, page)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert (f"note: message_0.db damaged or truncated (database disk image is malformed): in the chat with {HU}, "
            "local_id 4 not read") in result.stdout, result.stdout  # fmt: skip
    assert sorted(source_ids(tmp_path / "ws")) == sorted(f"message_0:{HU}:{i}" for i in (1, 2, 3, 5, 6, 7))


def test_names_database_handed_over_alone(formats: dict[str, Any], tmp_path: Path) -> None:
    """MicroMsg.db from another folder than the shards: read for the only account there is, or
    named if it does not open; alone, it is no history."""
    _, multi = pc3_copy(formats, tmp_path)
    micromsg = multi.parent / "MicroMsg.db"
    elsewhere = tmp_path / "elsewhere" / "MicroMsg.db"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(random.Random(3).randbytes(micromsg.stat().st_size))
    ws = tmp_path / "ws"
    result = run_cli("ingest", multi / "MSG0.db", elsewhere, "--self", formats["pc3"].self_wxid, "--workspace", ws)
    assert result.returncode == 0, result.stderr
    assert "note: MicroMsg.db not read, still encrypted: contacts and groups keep their wxids" in result.stdout
    fails(run_cli("ingest", elsewhere, "--workspace", ws), 2, "MicroMsg.db is still encrypted (a PC WeChat database)")
    fails(run_cli("ingest", micromsg, "--workspace", ws), 2, "found no WeChat history")


def test_pc4_damaged_page_mid_shard_costs_only_its_rows(formats: dict[str, Any], tmp_path: Path) -> None:
    account = pc4_copy(formats, tmp_path)
    shard = account / "db_storage" / "message" / "message_1.db"
    conn = sqlite3.connect(shard)
    talkers = {hashlib.md5(n.encode()).hexdigest(): n for (n,) in conn.execute("SELECT user_name FROM Name2Id")}
    tables = {t: conn.execute(f"SELECT max(local_id) FROM {t}").fetchone()[0] for (t,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'Msg_%'")}  # fmt: skip
    conn.close()
    break_page(shard, middle_leaf(shard, list(tables)))
    conn, still = sqlite3.connect(f"file:{shard}?mode=ro", uri=True), set()
    for table, rows in tables.items():
        for local_id in range(1, rows + 1):
            try:
                if conn.execute(f"SELECT * FROM {table} WHERE local_id = ?", (local_id,)).fetchall():
                    still.add(f"message_1:{talkers[table[4:]]}:{local_id}")
            except sqlite3.DatabaseError:
                continue
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert {sid for sid in source_ids(tmp_path / "ws") if sid.startswith("message_1:")} == still
    assert (
        "note: message_1.db damaged or truncated (database disk image is malformed): in the chat with " in result.stdout
    )
    assert len(still) < sum(tables.values())
