"""Android ingest end to end through the real CLI: every route, idempotence, the seed's rows."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from conftest import IMEI, UIN, build_android_db, run_cli

from wechat_avatar import android_crypto
from wechat_avatar.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "render"
KEY = android_crypto.android_key(IMEI, UIN)


def seed(name: str) -> str:
    return (FIXTURES / f"seed_{name}").read_text(encoding="utf-8")


# The seed's own examples (wechat-avatar.md §1.2.1) as Android rows, and what it rendered them as.
SEED_ROWS: list[tuple[int, str, str, str]] = [
    # (Android type, content, is-group-prefix sender or "", expected text)
    (1, "对", "", "对"),
    (822083633, seed("quote.xml"), "", "我没问我爸"),
    (1, seed("emoji.txt").strip(), "", "[捂脸]"),
    (49, seed("link.xml"), "", "[外部链接]凌晨四点起床，我见到了传说中的“接天莲叶无穷碧，映日荷花别样红”"),
    (3, seed("image.xml"), "", "[手机图片]"),
    (47, seed("sticker.txt").strip(), "", "[表情包]"),
    (419430449, seed("transfer.xml"), "", "[微信转账]"),
    (1107296305, seed("announcement.xml"), "wxid_hu", "[群公告]"),
    (10000, seed("red_packet_taken.txt"), "", "[对方领取红包]"),
    (42, seed("card.xml"), "", "[名片推荐]CYGGL"),
    (47, seed("sticker_other.txt").strip(), "wxid_hu", "[表情包]"),
]


def seed_db(path: Path, key: str | None = None) -> Path:
    rows = []
    for i, (code, content, group_sender, _) in enumerate(SEED_ROWS, start=1):
        talker = "123@chatroom" if group_sender else "wxid_hu"
        body = f"{group_sender}:\n{content}" if group_sender else content
        rows.append((i, 1000 + i, code, 0, 1687360045000 + i * 1000, talker, body))
    return build_android_db(path, rows, key=key)


def lines(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def rows(workspace: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(workspace / "chat.db")
    return conn.execute(
        "SELECT source, source_id, server_id, chat_id, sender, is_self, ts_ms, base_type, sub_type, text, "
        "category, render_status, quote FROM messages ORDER BY source, CAST(source_id AS INTEGER)"
    ).fetchall()


def test_seed_examples_render_as_the_seed_did(tmp_path: Path) -> None:
    db = seed_db(tmp_path / "EnMicroMsg.db", key=KEY)
    result = run_cli("ingest", db, "--uin", UIN, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    out = lines(run_cli("messages", "--workspace", tmp_path / "ws"))
    assert [m["text"] for m in out] == [expected for *_, expected in SEED_ROWS]
    announcement = out[7]
    assert (announcement["chat_kind"], announcement["sender"], announcement["is_self"]) == ("group", "wxid_hu", False)
    assert announcement["sender_name"] == "胡三行"  # remark, since the group gives no nickname
    assert out[0]["time"] == "2023-06-21T23:07:26+08:00" and out[0]["chat"] == "胡三行"
    assert list(out[0])[:9] == ["chat", "chat_kind", "sender", "sender_name", "is_self", "time", "type",
                                "subtype", "text"]  # fmt: skip
    assert (out[1]["type"], out[1]["subtype"]) == (49, 57)
    quote = sqlite3.connect(tmp_path / "ws" / "chat.db").execute("SELECT quote FROM messages WHERE source_id='2'")
    assert quote.fetchone()[0] == "??: 我妈说可以"


def test_encrypted_export_with_shared_prefs(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    first = run_cli("ingest", export.out, "--workspace", ws)
    assert first.returncode == 0, first.stderr
    manifest = json.loads(export.manifest_path.read_text())
    stored = rows(ws)
    assert len(stored) == manifest["messages"]
    assert {r[0] for r in stored} == {f"android:{manifest['self_wxid']}"}
    assert f"read {manifest['messages']}, added {manifest['messages']}" in first.stdout
    again = run_cli("ingest", export.db_path, export.prefs_dir, "--workspace", ws)
    assert again.returncode == 0 and "added 0, already stored" in again.stdout
    assert rows(ws) == stored


def test_csv_export_matches_the_database(export: Any, tmp_path: Path) -> None:
    db_ws, csv_ws = tmp_path / "db", tmp_path / "csv"
    assert run_cli("ingest", export.db_path, "--uin", UIN, "--workspace", db_ws).returncode == 0
    result = run_cli("ingest", export.csv_dir, "--workspace", csv_ws)
    assert result.returncode == 0, result.stderr
    assert rows(csv_ws) == rows(db_ws)
    # the same history as CSV into the database's workspace: nothing new
    merged = run_cli("ingest", export.csv_dir, "--workspace", db_ws)
    assert "added 0" in merged.stdout and rows(db_ws) == rows(csv_ws)
    contacts = "SELECT wxid, alias, remark, nickname, kind FROM contacts ORDER BY wxid"
    members = "SELECT * FROM members ORDER BY chat_id, wxid"
    for sql in (contacts, members):
        assert (
            sqlite3.connect(csv_ws / "chat.db").execute(sql).fetchall()
            == sqlite3.connect(db_ws / "chat.db").execute(sql).fetchall()
        )


def test_group_senders_get_their_group_nicknames(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run_cli("ingest", export.out, "--workspace", ws)
    conn = sqlite3.connect(ws / "chat.db")
    named = conn.execute(
        "SELECT count(*) FROM message_view v JOIN members m ON m.chat_id = v.chat_id AND m.wxid = v.sender "
        "WHERE m.display_name != '' AND v.sender_name = m.display_name AND NOT v.is_self"
    ).fetchone()[0]
    assert named > 0
    unprefixed = conn.execute(
        "SELECT count(*) FROM messages WHERE chat_id LIKE '%@chatroom' AND NOT is_self AND sender = '' "
        "AND base_type NOT IN (10000, 10002)"
    ).fetchone()[0]
    assert unprefixed == 0


def test_key_and_decrypted_routes_give_the_same_store(export: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "EnMicroMsg.db"
    plain.parent.mkdir()
    conn = android_crypto.open_encrypted(export.db_path, export.key)
    conn.execute("PRAGMA query_only = OFF")
    conn.execute(f"ATTACH DATABASE '{plain}' AS plain KEY ''")
    conn.execute("SELECT sqlcipher_export('plain')")
    conn.close()
    assert plain.read_bytes()[:16] == b"SQLite format 3\x00"
    by_key = run_cli("ingest", export.db_path, "--key", export.key.upper(), "--workspace", tmp_path / "k")
    decrypted = run_cli("ingest", plain, "--workspace", tmp_path / "d")
    assert by_key.returncode == 0 and decrypted.returncode == 0, decrypted.stderr
    assert rows(tmp_path / "k") == rows(tmp_path / "d")


def test_stats_and_messages_views(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    run_cli("ingest", export.out, "--workspace", ws)
    stats = json.loads(run_cli("stats", "--workspace", ws, "--json").stdout)
    manifest = json.loads(export.manifest_path.read_text())
    assert stats["account"] == {"wxid": manifest["self_wxid"], "nickname": manifest["self_nickname"]}
    assert stats["messages"] == manifest["messages"] == sum(stats["by_category"].values())
    assert stats["chats"]["group"] > 0 and stats["chats"]["private"] > 0
    assert stats["ingests"][0]["added"] == manifest["messages"]
    text = run_cli("stats", "--workspace", ws).stdout
    assert "messages per category" in text and manifest["self_nickname"] in text
    some = lines(run_cli("messages", "--workspace", ws, "--limit", "5"))
    assert len(some) == 5 and [m["time"] for m in some] == sorted(m["time"] for m in some)
    chat = some[0]["chat"]
    only = lines(run_cli("messages", "--workspace", ws, "--chat", chat))
    assert only and {m["chat"] for m in only} == {chat}


def test_two_accounts_never_share_a_workspace(export: Any, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(export.csv_dir, other)
    me = json.loads(export.manifest_path.read_text())["self_wxid"]
    info = other / "userinfo.csv"
    info.write_text(info.read_text(encoding="utf-8").replace(me, "wxid_someone_else"), encoding="utf-8")
    ws = tmp_path / "ws"
    assert run_cli("ingest", export.csv_dir, "--workspace", ws).returncode == 0
    result = run_cli("ingest", other, "--workspace", ws)
    assert result.returncode == 3 and "use a separate --workspace" in result.stderr


def test_key_flag_is_validated_before_anything_is_read(tmp_path: Path) -> None:
    result = run_cli("ingest", tmp_path, "--key", "nothex!", "--workspace", tmp_path / "ws")
    assert result.returncode == 2 and "7 hex characters" in result.stderr and not (tmp_path / "ws").exists()


def test_parallel_ingest_stores_exactly_what_serial_ingest_does(export: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from wechat_avatar import ingest as pipeline
    from wechat_avatar.config import AvatarConfig
    from wechat_avatar.store import Store

    monkeypatch.setattr(pipeline, "PARALLEL_MIN_MESSAGES", 1)
    for workers, name in ((0, "serial"), (2, "parallel")):
        cfg = AvatarConfig()
        cfg.ingest.render_workers = workers
        cfg.ingest.batch_size = 100  # many batches in flight at once
        with Store.open(Workspace(tmp_path / name)) as store:
            [report] = pipeline.ingest([export.csv_dir], store, cfg)
        assert report.read == report.added == json.loads(export.manifest_path.read_text())["messages"]
    assert rows(tmp_path / "parallel") == rows(tmp_path / "serial")


def test_a_batch_whose_worker_died_is_prepared_here(export: Any, tmp_path: Path) -> None:
    from wechat_avatar.config import RenderConfig
    from wechat_avatar.ingest import _collect, prepare
    from wechat_avatar.sources.android_csv import AndroidCsv

    source = AndroidCsv(export.csv_dir)
    batch = list(source.rows())[:50]
    local = _collect(batch, None, source.row_mapper(), RenderConfig(), tmp_path)
    assert local == prepare(batch, source.row_mapper(), RenderConfig(), tmp_path) and len(local.keys) == 50
