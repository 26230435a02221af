"""Every format of the same synthetic history renders as the phone's does, and sources merge.

The synthetic PC databases and exports are written from the very events the Android export
is (synth/formats.py), so each message can be compared with its phone twin. Where a format
keeps less than the phone (an export's rendering, a dropped column), the rows that differ
must be exactly the documented losses, with the category the reader's docstring promises.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from wechat_avatar.config import AvatarConfig
from wechat_avatar.ingest import ingest
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace

# format -> {phone category: the category it has there} for the kinds whose text loses detail
LOSSES: dict[str, dict[str, str]] = {
    "pc3": {},
    "pc4": {},
    "pywxdump": {"link": "link", "file": "file", "channels": "channels", "music": "music",
                 "mini_program": "mini_program", "red_packet": "unknown", "pat": "unknown", "unknown": "unknown"},
    "memotrace": {"link": "link", "quote": "quote", "file": "file", "chat_record": "chat_record",
                  "channels": "channels", "pat": "pat", "voip": "voip", "music": "music",
                  "mini_program": "mini_program"},
    "chatlog-json": {"location": "location", "friend_request": "friend_request", "voip": "voip", "pat": "pat",
                     "music": "music", "card": "card", "mini_program": "mini_program", "link": "link"},
    "chatlog-csv": {"location": "location", "friend_request": "friend_request", "voip": "voip", "pat": "pat",
                    "music": "unknown", "card": "card", "mini_program": "mini_program", "link": "link",
                    "chat_record": "chat_record"},
}  # fmt: skip
ROW = (
    "SELECT {chat}, v.sender, v.ts_ms / 1000, v.is_self, v.base_type, v.sub_type, v.category, v.text, m.quote "
    "FROM message_view v JOIN messages m ON m.id = v.id"
)


def stored(workspace: Path, chat: str = "v.chat_id") -> list[tuple[Any, ...]]:
    return sqlite3.connect(workspace / "chat.db").execute(ROW.format(chat=chat)).fetchall()


def ingest_into(workspace: Path, *paths: Path, self_wxid: str | None = None) -> list[Any]:
    with Store.open(Workspace(workspace)) as store:
        return ingest(list(paths), store, AvatarConfig(ingest={"self_wxid": self_wxid}))


@pytest.fixture(scope="module")
def phone(export: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("phone")
    ingest_into(ws, export.out)
    return ws


def format_path(formats: dict[str, Any], fmt: str) -> Path:
    if fmt.startswith("chatlog"):
        return formats["chatlog"].path / fmt.removeprefix("chatlog-")
    return formats[fmt].path


@pytest.mark.parametrize("fmt", list(LOSSES))
def test_every_type_renders_as_from_the_phone(fmt: str, formats: dict[str, Any], phone: Path, tmp_path: Path) -> None:
    [report] = ingest_into(tmp_path, format_path(formats, fmt))
    assert report.read == report.added == 1500 and not report.skipped
    chat = "v.chat_name" if fmt == "memotrace" else "v.chat_id"  # MemoTrace has no group ids of its own
    ours, theirs = Counter(stored(phone, chat)), Counter(stored(tmp_path, chat))
    lost, changed = ours - theirs, theirs - ours
    twins: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in sorted(changed.elements()):
        twins.setdefault(row[:4], []).append(row)  # chat, sender, second, is_self: who said it when
    assert sum(lost.values()) == sum(changed.values())
    for row in sorted(lost.elements()):
        twin = twins[row[:4]].pop(0)
        assert LOSSES[fmt].get(row[6]) == twin[6], (row, twin)
    assert {row[6] for row in lost} == set(LOSSES[fmt])  # every documented loss happens in this history
    if fmt in ("pc3", "pc4"):  # the databases also name every contact and group member the same
        for sql in ("SELECT wxid, alias, remark, nickname, kind FROM contacts ORDER BY wxid",
                    "SELECT * FROM members ORDER BY chat_id, wxid"):  # fmt: skip
            assert sqlite3.connect(tmp_path / "chat.db").execute(sql).fetchall() == \
                sqlite3.connect(phone / "chat.db").execute(sql).fetchall()  # fmt: skip


def test_phone_pc_and_pywxdump_merge_into_one_history(export: Any, formats: dict[str, Any], phone: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    ws = tmp_path / "ws"
    args = [export.out, formats["pc3"].path, formats["pywxdump"].path, "--workspace", ws]
    first = run_cli("ingest", *args)
    assert first.returncode == 0, first.stderr
    assert "added 1500, already stored 0, merged 0" in first.stdout  # the phone
    assert first.stdout.count("added 0, already stored 0, merged 1500") == 2  # PC 3.x and PyWxDump
    assert sorted(stored(ws)) == sorted(stored(phone))  # exactly the phone's messages and texts
    again = run_cli("ingest", *args)  # incremental: the phone resumes after its last msgId and reads nothing
    assert "read 0, added 0, already stored 0, merged 0" in again.stdout, again.stdout
    assert again.stdout.count("added 0, already stored 1500, merged 0") == 2  # PC 3.x and PyWxDump
    full = run_cli("ingest", *args, "--full")  # every row read again, and still none added
    assert full.stdout.count("added 0, already stored 1500, merged 0") == 3, full.stdout
    merges = sqlite3.connect(ws / "chat.db").execute("SELECT source, matched_on, count(*) FROM merges GROUP BY 1, 2")
    assert sorted(merges) == [("pc3:wxid_avatar_self", "server_id", 1500),
                              ("pywxdump:wxid_avatar_self", "server_id", 1500)]  # fmt: skip


def test_pc_first_then_the_phone_keeps_the_same_texts(export: Any, formats: dict[str, Any], phone: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    reports = ingest_into(tmp_path, formats["pc3"].path, formats["pc4"].path)
    reports += ingest_into(tmp_path, export.out)
    assert [(r.added, r.merged) for r in reports] == [(1500, 0), (0, 1500), (0, 1500)]
    assert sorted(row[1:] for row in stored(tmp_path)) == sorted(row[1:] for row in stored(phone))


def test_exports_without_server_ids_merge_on_chat_sender_second_and_text(
    export: Any, formats: dict[str, Any], tmp_path: Path
) -> None:
    chatlog = formats["chatlog"].path
    reports = ingest_into(tmp_path, export.out, formats["memotrace"].path, chatlog / "json", chatlog / "csv")
    assert [(r.kind, r.added, r.merged) for r in reports] == [
        ("android-db", 1500, 0),
        ("memotrace", 0, 1500),
        ("chatlog-json", 0, 1500),
        ("chatlog-csv", 0, 1500),
    ]
    on = sqlite3.connect(tmp_path / "chat.db").execute("SELECT DISTINCT matched_on FROM merges").fetchall()
    assert on == [("merge_key",)]


def test_memotrace_alone_names_its_groups_after_their_folders(formats: dict[str, Any], tmp_path: Path) -> None:
    [report] = ingest_into(tmp_path, formats["memotrace"].path)
    manifest = json.loads(formats["memotrace"].manifest_path.read_text())
    stand_ins = [n for n in report.notes if "has no id in a MemoTrace export" in n]
    assert len(stand_ins) == manifest["groups"]
    rows = sqlite3.connect(tmp_path / "chat.db").execute(
        "SELECT c.kind, ct.nickname FROM chats c JOIN contacts ct ON ct.wxid = c.id WHERE c.id LIKE 'memotrace_%'"
    )
    assert {kind for kind, _ in rows} == {"group"}


def _contents(folder: Path) -> dict[str, Any]:
    """Every file under `folder`: databases by their rows (file bytes carry no meaning), the rest by bytes."""
    found: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = str(path.relative_to(folder))
            found[key] = list(sqlite3.connect(path).iterdump()) if path.suffix == ".db" else path.read_bytes()
    return found


@pytest.mark.parametrize("fmt", ["pc3", "pc4", "pywxdump", "memotrace", "chatlog"])
def test_synth_formats_are_deterministic_and_hold_the_phone_history(fmt: str, tmp_path: Path) -> None:
    from wechat_avatar.synth import synth_android
    from wechat_avatar.synth.formats import synth_export

    first, second = (synth_export(tmp_path / name, fmt, messages=400, seed=5) for name in ("a", "b"))
    assert _contents(first.out) == _contents(second.out)
    phone = json.loads(synth_android(tmp_path / "phone", 400, seed=5).manifest_path.read_text())
    made = json.loads(first.manifest_path.read_text())
    assert made["messages"] == 400 and made["counts_by_kind"] == phone["counts_by_kind"]
    assert made["time_range_ms"] == phone["time_range_ms"] and made["self_wxid"] == phone["self_wxid"]


def test_synth_pc3_group_senders_decode_with_bbpb(formats: dict[str, Any]) -> None:
    import blackboxprotobuf

    shard = formats["pc3"].path / "Msg" / "Multi" / "MSG0.db"
    rows = sqlite3.connect(shard).execute(
        "SELECT BytesExtra FROM MSG WHERE StrTalker LIKE '%@chatroom' AND IsSender = 0 AND Type = 1 LIMIT 20"
    )
    typedef = {"3": {"type": "message", "seen_repeated": True,
                     "message_typedef": {"1": {"type": "int"}, "2": {"type": "string"}}}}  # fmt: skip
    senders = set()
    for (blob,) in rows:
        decoded, _ = blackboxprotobuf.decode_message(blob, typedef)
        senders |= {item["2"] for item in decoded["3"] if item["1"] == 1}
    assert len(senders) > 3 and all(s.startswith(("wxid_", "a", "zz", "lin", "tom")) for s in senders)


def test_synth_format_flag(tmp_path: Path) -> None:
    made = run_cli("synth", tmp_path / "pc", "--format", "pc3", "--messages", "200", "--seed", "5")
    assert made.returncode == 0, made.stderr
    account = tmp_path / "pc" / "WeChat Files" / "wxid_avatar_self"
    assert f"wrote 200 messages of wxid_avatar_self as pc3 to {account}" in " ".join(made.stdout.split())
    result = run_cli("ingest", account, "--workspace", tmp_path / "ws")
    assert result.returncode == 0 and "read 200, added 200" in result.stdout, result.stderr
    bad = run_cli("synth", tmp_path / "x", "--format", "ios")
    assert bad.returncode == 2 and "unknown synth format 'ios'" in bad.stderr and "pywxdump" in bad.stderr
