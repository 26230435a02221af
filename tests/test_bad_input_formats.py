"""Bad PC databases and exports: one clear line and an exit code, or bad rows counted and skipped."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from conftest import run_cli
from test_bad_input import count, fails
from test_export_sources import PYWXDUMP_HEADER, PYWXDUMP_ROWS, messages, pywxdump_folder, write_csv
from test_pc_sources import HU, PC3_ROWS, V4_ROWS, build_pc3, build_pc4, zstd

ME = "wxid_me"


def test_still_encrypted_pc_databases_are_refused(tmp_path: Path) -> None:
    msg = tmp_path / "WeChat Files" / ME / "Msg"
    (msg / "Multi").mkdir(parents=True)
    noise = random.Random(3)
    for path in (msg / "MicroMsg.db", msg / "Multi" / "MSG0.db"):
        path.write_bytes(noise.randbytes(4096 * 3))
    result = run_cli("ingest", tmp_path / "WeChat Files", "--workspace", tmp_path / "ws")
    fails(result, 2, "is still encrypted (a PC WeChat database)", "decrypt it first", "never reads keys")
    v4 = tmp_path / "message_0.db"
    v4.write_bytes(noise.randbytes(4096 * 2))
    fails(run_cli("ingest", v4, "--workspace", tmp_path / "ws"), 2, "message_0.db is still encrypted")


def test_corrupt_blobs_and_broken_protobuf_are_counted_and_skipped(tmp_path: Path) -> None:
    broken = [
        (20, 120, 49, 57, 0, 1687360200, HU, "", None, b"\xff" * 40, None),  # not an LZ4 block
        (21, 121, 1, 0, 0, 1687360210, "123@chatroom", "hi", None, None, b"\x1a\xff\xff"),  # truncated BytesExtra
        (22, 122, 1, 0, 0, 1687360220, "123@chatroom", "hi", None, None, None),  # no BytesExtra at all
    ]
    account = build_pc3(tmp_path / "pc3", [row for row, _ in PC3_ROWS] + broken)
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    for reason in (
        "1 corrupt LZ4 CompressContent",
        "1 broken BytesExtra protobuf",
        "1 group message without BytesExtra",
    ):
        assert reason in result.stdout, result.stdout
    assert count(tmp_path / "ws") == len(PC3_ROWS)
    # the good rows beside the broken ones come through whole, the LZ4 quote and its BytesExtra sender too
    good = messages(tmp_path / "ws")
    assert [m["text"] for m in good] == [text for _, text in PC3_ROWS]
    assert good[2]["sender"] == HU and good[2]["text"] == "我没问我爸"
    zstd_broken = ("wxid_hu", 299, 1, HU, 1700000099, zstd("早")[:-4] + b"\x00\x01\x02", 4)
    v4 = build_pc4(tmp_path / "pc4", [row for row, _ in V4_ROWS] + [zstd_broken])
    result = run_cli("ingest", v4, "--workspace", tmp_path / "ws4")
    assert result.returncode == 0 and "1 corrupt zstd message_content" in result.stdout, result.stdout
    assert [m["text"] for m in messages(tmp_path / "ws4")] == [text for _, text in V4_ROWS]


def test_csv_with_extra_missing_or_broken_columns(tmp_path: Path) -> None:
    extra = [*PYWXDUMP_HEADER, "note"]
    write_csv(tmp_path / "extra" / "wxid_hu_0_3.csv", extra, [[*r, "x"] for r, _ in PYWXDUMP_ROWS[:2]])
    result = run_cli("ingest", tmp_path / "extra", "--self", ME, "--workspace", tmp_path / "ws")
    assert result.returncode == 0 and "read 2, added 2" in result.stdout, result.stdout + result.stderr
    missing = [c for c in PYWXDUMP_HEADER if c not in ("msg", "CreateTime")]
    write_csv(tmp_path / "missing" / "wxid_hu_0_3.csv", missing, [[1, "1", "文本", 0, HU, HU, ""]])
    fails(run_cli("ingest", tmp_path / "missing", "--workspace", tmp_path / "ws"), 2,
          "looks like a pywxdump export but is missing columns: msg, CreateTime")  # fmt: skip
    rows = [r for r, _ in PYWXDUMP_ROWS[:3]]
    rows += [[9, "900", "文本", 0, HU, HU, "短了一列"], [10, "901", "文本", 0, HU, HU, "时间坏了", "", "昨天晚上"]]
    write_csv(tmp_path / "ragged" / "wxid_hu_0_5.csv", PYWXDUMP_HEADER, rows)
    result = run_cli("ingest", tmp_path / "ragged", "--self", ME, "--workspace", tmp_path / "ws3")
    assert result.returncode == 0, result.stderr
    assert "1 wrong number of CSV fields" in result.stdout and "1 unreadable time" in result.stdout
    assert count(tmp_path / "ws3") == 3


def test_gbk_and_mixed_encodings_are_read(tmp_path: Path) -> None:
    rows = [r for r, _ in PYWXDUMP_ROWS[:3]]
    gbk = write_csv(tmp_path / "gbk" / "wxid_hu_0_4.csv", PYWXDUMP_HEADER, rows, encoding="gbk")
    result = run_cli("ingest", gbk.parent, "--self", ME, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "note: 4 lines were not UTF-8 and were read as GBK" in result.stdout  # the quote spans two lines
    assert [m["text"] for m in messages(tmp_path / "ws")] == ["在吗[捂脸]", "在", "我没问我爸"]
    mixed = tmp_path / "mixed" / "wxid_hu_0_4.csv"
    write_csv(mixed, PYWXDUMP_HEADER, rows[:2])
    with mixed.open("ab") as fh:  # an Excel user appended rows saved as GBK
        fh.write(",".join(map(str, [4, "404", "文本", 0, HU, HU, "后来加的", "", "2023-06-21 23:09:00"])).encode("gbk"))
    result = run_cli("ingest", mixed.parent, "--self", ME, "--workspace", tmp_path / "ws2")
    assert "note: 1 lines were not UTF-8" in result.stdout, result.stdout + result.stderr
    assert [m["text"] for m in messages(tmp_path / "ws2")][-1] == "后来加的"


def test_empty_exports(tmp_path: Path) -> None:
    write_csv(tmp_path / "pywx" / "wxid_hu_0_1.csv", PYWXDUMP_HEADER, [])
    fails(
        run_cli("ingest", tmp_path / "pywx", "--workspace", tmp_path / "ws"), 2, "PyWxDump export", "holds no messages"
    )
    (tmp_path / "chatlog").mkdir()
    (tmp_path / "chatlog" / "answer.json").write_text("[]\n")
    fails(run_cli("ingest", tmp_path / "chatlog" / "answer.json", "--workspace", tmp_path / "ws"), 2,
          "answer.json holds no messages")  # fmt: skip
    memo = ["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
            "Remark", "NickName", "Sender"]  # fmt: skip
    write_csv(tmp_path / "memo" / "胡三行" / "胡三行_utf8.csv", memo, [], encoding="utf-8-sig")
    fails(run_cli("ingest", tmp_path / "memo", "--workspace", tmp_path / "ws"), 2, "MemoTrace export", "no messages")
    empty_db = tmp_path / "MSG0.db"
    empty_db.write_bytes(b"")
    fails(run_cli("ingest", empty_db, "--workspace", tmp_path / "ws"), 2, "MSG0.db is empty (0 bytes)")
    assert not (tmp_path / "ws" / "chat.db").exists() or count(tmp_path / "ws") == 0


def test_whose_history_it_is(tmp_path: Path) -> None:
    folder = pywxdump_folder(tmp_path / "export")  # your own rows name you "我"
    fails(run_cli("ingest", folder, "--workspace", tmp_path / "ws"), 2, "names you only as '我'", "--self")
    # a workspace that already knows its account lends it to an export that does not say
    account = build_pc3(tmp_path / "pc3", [row for row, _ in PC3_ROWS[:2]])
    assert run_cli("ingest", account, "--workspace", tmp_path / "ws").returncode == 0
    result = run_cli("ingest", folder, "--workspace", tmp_path / "ws")
    assert result.returncode == 0 and "pywxdump" in result.stdout, result.stderr


def test_unknown_files_name_the_formats_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))
    fails(run_cli("ingest", tmp_path / "notes.json", "--workspace", tmp_path / "ws"), 2,
          "notes.json is not an export I know", "PyWxDump", "MemoTrace", "chatlog", "4.x")  # fmt: skip
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    fails(run_cli("ingest", tmp_path / "other.db", "--workspace", tmp_path / "ws"), 2,
          "nor a PC WeChat MSG*.db / MicroMsg.db or a 4.x message_*.db / contact.db")  # fmt: skip
