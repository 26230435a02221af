"""Bad input: one clear line and a non-zero exit, never a traceback, nothing stored lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import IMEI, UIN, build_android_db, run_cli

from wechat_avatar import android_crypto

KEY = android_crypto.android_key(IMEI, UIN)


def fails(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ")
    for needle in needles:
        assert needle in result.stderr, result.stderr


def count(workspace: Path) -> int:
    return sqlite3.connect(workspace / "chat.db").execute("SELECT count(*) FROM messages").fetchone()[0]


@pytest.fixture
def stored(export: Any, tmp_path: Path) -> Path:
    """A workspace that already holds the synthetic history."""
    ws = tmp_path / "ws"
    assert run_cli("ingest", export.out, "--workspace", ws).returncode == 0
    return ws


def test_wrong_imei_uin_or_key(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    fails(run_cli("ingest", export.db_path, "--uin", "1", "--workspace", ws), 2,
          "cannot decrypt EnMicroMsg.db: wrong IMEI/uin or key")  # fmt: skip
    fails(run_cli("ingest", export.db_path, "--key", "0000000", "--workspace", ws), 2, "cannot decrypt")
    fails(run_cli("ingest", export.db_path, "--imei", "860000000000001", "--workspace", ws), 2, "no uin")
    # a wrong IMEI still works while the dummy IMEI is right: both are tried
    assert run_cli("ingest", export.out, "--imei", "860000000000001", "--workspace", ws).returncode == 0


def test_zero_byte_random_and_truncated_files(export: Any, tmp_path: Path, stored: Path) -> None:
    before = count(stored)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    fails(run_cli("ingest", empty, "--workspace", stored), 2, "is empty (0 bytes)")
    noise = tmp_path / "noise.db"
    noise.write_bytes(random.Random(1).randbytes(64 * 1024))
    fails(run_cli("ingest", noise, "--uin", UIN, "--workspace", stored), 2, "cannot decrypt")
    data = export.db_path.read_bytes()
    odd = tmp_path / "odd.db"
    odd.write_bytes(data[: len(data) // 2 + 100])
    fails(run_cli("ingest", odd, "--uin", UIN, "--workspace", stored), 2, "truncated")
    cut = tmp_path / "cut" / "EnMicroMsg.db"
    cut.parent.mkdir()
    cut.write_bytes(data[: (len(data) // 2) // 1024 * 1024])  # whole pages, half of them missing
    fails(run_cli("ingest", cut, "--uin", UIN, "--workspace", stored), 2, "damaged or truncated")
    fake = tmp_path / "fake.db"
    fake.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    fails(run_cli("ingest", fake, "--workspace", stored), 2, "fake.db")
    assert count(stored) == before


def test_half_written_source_is_rolled_back(export: Any, tmp_path: Path) -> None:
    """A database that breaks mid-read adds nothing, even to an empty workspace."""
    cut = tmp_path / "EnMicroMsg.db"
    data = export.db_path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.8) // 1024 * 1024])
    ws = tmp_path / "ws"
    fails(run_cli("ingest", cut, "--uin", UIN, "--workspace", ws), 2)
    assert count(ws) == 0


def test_not_a_wechat_export(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    fails(run_cli("ingest", folder, "--workspace", tmp_path / "ws"), 2, "found no WeChat history", "EnMicroMsg.db")
    fails(run_cli("ingest", tmp_path / "missing", "--workspace", tmp_path / "ws"), 2, "no such file")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    fails(run_cli("ingest", tmp_path / "other.db", "--workspace", tmp_path / "ws"), 2,
          "not an EnMicroMsg.db: no message, rcontact, userinfo table")  # fmt: skip


def test_csv_folder_with_missing_columns(export: Any, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(export.csv_dir, folder)
    message = folder / "message.csv"
    text = message.read_text(encoding="utf-8-sig")
    message.write_text(text.replace("talker", "talkerX", 1), encoding="utf-8")
    fails(run_cli("ingest", folder, "--workspace", tmp_path / "ws"), 2, "message.csv is missing columns: talker")
    (folder / "message.csv").unlink()
    (folder / "userinfo.csv").unlink()
    (folder / "message_export.csv").write_text(text, encoding="utf-8")
    fails(run_cli("ingest", folder, "--workspace", tmp_path / "ws"), 2, "no CSV for table userinfo")


def test_bad_records_inside_a_good_csv_are_counted_and_skipped(export: Any, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(export.csv_dir, folder)
    message = folder / "message.csv"
    text = message.read_text(encoding="utf-8-sig").rstrip("\r\n")
    message.write_text(text + '\r\n9999998,,1,2,0\r\n9999999,1,x,2,1,0,oops,wxid_a,hi,,,,,,,,,,,,,\r\n',
                       encoding="utf-8")  # fmt: skip
    result = run_cli("ingest", folder, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "1 wrong number of CSV fields" in result.stdout and "1 non-numeric type" in result.stdout
    manifest = json.loads(export.manifest_path.read_text())
    assert count(tmp_path / "ws") == manifest["messages"]


def test_odd_contents_are_kept_and_counted(tmp_path: Path) -> None:
    huge = "<msg><appmsg><title>" + "长" * 1_000_000 + "</title><type>5</type></appmsg></msg>"
    db = build_android_db(tmp_path / "EnMicroMsg.db", [
        (1, 1, 49, 0, 1_700_000_000_000, "wxid_hu", "<msg><appmsg><title>broken"),
        (2, 2, 999_999, 0, 1_700_000_001_000, "wxid_hu", "what is this"),
        (3, 3, 1, 1, 1_700_000_002_000, "wxid_hu", b"\xe4\xbd\xa0\xe5\xa5"),  # 你 + a cut character
        (4, 4, 49, 0, 1_700_000_003_000, "wxid_hu", huge),
        (5, 5, 3, 0, 1_700_000_004_000, "wxid_hu", "not xml at all"),
        (6, 6, 1, 0, 1_700_000_005_000, "wxid_hu", None),
    ])  # fmt: skip
    result = run_cli("ingest", db, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "repaired 1 invalid UTF-8 replaced" in result.stdout
    assert "unknown placeholder" in result.stdout
    out = [json.loads(x) for x in run_cli("messages", "--workspace", tmp_path / "ws").stdout.splitlines()]
    assert len(out) == 6
    assert out[1]["text"] == "[未知消息]" and out[1]["status"] == "unknown"
    assert out[2]["text"] == "你\ufffd"
    assert out[3]["text"].startswith("[外部链接]长长") and len(out[3]["text"]) == 4000
    raw = sqlite3.connect(tmp_path / "ws" / "chat.db").execute("SELECT length(content) FROM messages WHERE id = 4")
    assert raw.fetchone()[0] == len(huge)  # the raw content is never cut


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Root ignores mode bits, so make the folder immutable instead where we are root."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_read_only_workspace(export: Any, tmp_path: Path) -> None:
    with read_only(tmp_path / "ro"):
        fails(run_cli("ingest", export.out, "--workspace", tmp_path / "ro" / "ws"), 3, "cannot use workspace")
        fails(run_cli("ingest", export.out, "--workspace", tmp_path / "ro"), 3, "cannot use workspace")


def test_bad_config_and_missing_store(tmp_path: Path) -> None:
    bad = tmp_path / "avatar.yaml"
    bad.write_text("render:\n  drop: [nonsense]\n")
    fails(run_cli("stats", "--config", bad, "--workspace", tmp_path), 2, "render.drop", "unknown categories")
    bad.write_text("ingest: [1, 2\n")
    fails(run_cli("stats", "--config", bad), 2, "not valid YAML")
    fails(run_cli("stats", "--config", tmp_path / "none.yaml"), 2, "config file not found")
    fails(
        run_cli("messages", "--workspace", tmp_path / "empty"),
        2,
        "no chat store",
    )
