"""The synthetic Android export: deterministic, real-shaped, and honest about what it planted."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import blackboxprotobuf
import pytest

from wechat_avatar import android_crypto
from wechat_avatar.errors import DecryptError
from wechat_avatar.synth import CANARIES, SynthResult, schema, synth_android
from wechat_avatar.synth.phrases import PII_FORMS
from wechat_avatar.synth.pii import bank_card, id_check_digit, id_number, luhn_ok
from wechat_avatar.synth.tables import ROOMDATA_TYPEDEF

N = 5000
TABLES = ("message", "rcontact", "userinfo", "chatroom")
# every Android type code the generator promises (reference §1.4), odd 999999 included
TYPE_CODES = {
    1,
    3,
    34,
    37,
    42,
    43,
    47,
    48,
    49,
    50,
    10000,
    268445456,
    285212721,
    419430449,
    436207665,
    754974769,
    822083633,
    922746929,
    1090519089,
    1107296305,
    999999,
}
APPMSG_SUBTYPES = {3, 4, 5, 19, 33}  # music, bilibili, link, chat record, mini program: all type 49
PREFIX = re.compile(r"^([A-Za-z0-9_\-@.]+):\n")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthResult, SynthResult]:
    """The same export twice, to compare."""
    base = tmp_path_factory.mktemp("synth")
    return synth_android(base / "a", N, seed=0), synth_android(base / "b", N, seed=0)


@pytest.fixture(scope="module")
def result(made: tuple[SynthResult, SynthResult]) -> SynthResult:
    return made[0]


@pytest.fixture(scope="module")
def manifest(result: SynthResult) -> dict:
    return json.loads(result.manifest_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows(result: SynthResult) -> list[dict]:
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    conn.row_factory = lambda cur, row: {d[0]: v for d, v in zip(cur.description, row, strict=True)}
    return conn.execute("SELECT * FROM message ORDER BY msgId").fetchall()


def db_rows(res: SynthResult) -> dict[str, list[tuple]]:
    conn = android_crypto.open_encrypted(res.db_path, res.key)
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


def text(content: str | bytes) -> str:
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def test_same_seed_gives_identical_csvs_and_rows(made: tuple[SynthResult, SynthResult]) -> None:
    a, b = made
    for table in TABLES:
        assert (a.csv_dir / f"{table}.csv").read_bytes() == (b.csv_dir / f"{table}.csv").read_bytes()
    assert db_rows(a) == db_rows(b)
    assert a.manifest_path.read_text() == b.manifest_path.read_text()


def test_same_seed_in_another_process_with_another_hash_seed(result: SynthResult, tmp_path: Path) -> None:
    """Nothing may depend on set/dict-of-str iteration order, which PYTHONHASHSEED changes."""
    code = (
        "from pathlib import Path; from wechat_avatar.synth import synth_android; "
        f"synth_android(Path({str(tmp_path)!r}), {N})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    for table in TABLES:
        name = f"{table}.csv"
        assert (tmp_path / "csv" / name).read_bytes() == (result.csv_dir / name).read_bytes()


def test_another_seed_differs(result: SynthResult, tmp_path: Path) -> None:
    other = synth_android(tmp_path / "c", 300, seed=1)
    head = result.csv_dir.joinpath("message.csv").read_bytes()[:20_000]
    assert other.csv_dir.joinpath("message.csv").read_bytes()[:20_000] != head


def test_exact_message_count_and_progress(result: SynthResult, rows: list[dict], tmp_path: Path) -> None:
    assert len(rows) == N == result.messages
    assert [r["msgId"] for r in rows] == list(range(1, N + 1))
    with result.csv_dir.joinpath("message.csv").open(encoding="utf-8-sig", newline="") as fh:
        assert sum(1 for _ in csv.reader(fh)) == N + 1
    ticks: list[int] = []
    small = synth_android(tmp_path / "p", 12_345, seed=2, progress=ticks.append)
    assert sum(ticks) == 12_345 == small.messages and len(ticks) == 3


def test_db_opens_only_with_the_right_key(result: SynthResult) -> None:
    assert result.key == android_crypto.android_key(android_crypto.DEFAULT_IMEI, "1727374951")
    assert not result.db_path.read_bytes()[:16].startswith(b"SQLite format 3")
    with pytest.raises(DecryptError):
        wrong = android_crypto.android_key("860000000000001", "1727374951")
        android_crypto.open_encrypted(result.db_path, wrong)
    android_crypto.open_encrypted(result.db_path, result.key).close()


def test_every_type_code_is_present(rows: list[dict], manifest: dict) -> None:
    present = {r["type"] for r in rows}
    assert present >= TYPE_CODES
    subtypes = {
        int(m[1]) for r in rows if r["type"] == 49 for m in [re.search(r"<type>(\d+)</type>", text(r["content"]))] if m
    }
    assert subtypes >= APPMSG_SUBTYPES
    assert manifest["counts_by_type"] == {str(t): sum(r["type"] == t for r in rows) for t in sorted(present)}
    assert sum(r["type"] == 1 for r in rows) / N > 0.6  # mostly text, like a real history


def test_quotes_point_at_real_earlier_messages(rows: list[dict]) -> None:
    by_svrid = {r["msgSvrId"]: r for r in rows}
    quotes = [r for r in rows if r["type"] == 822083633]
    assert len(quotes) > 10
    for q in quotes:
        ref = ET.fromstring(PREFIX.sub("", q["content"])).find("appmsg/refermsg")
        assert ref is not None
        target = by_svrid[int(ref.findtext("svrid"))]
        assert target["msgId"] < q["msgId"] and target["talker"] == q["talker"]
        assert PREFIX.sub("", text(target["content"])) == ref.findtext("content")
        assert int(ref.findtext("createtime")) == target["createTime"] // 1000


def test_group_rows_are_prefixed_except_own_and_system(rows: list[dict], result: SynthResult) -> None:
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    rooms = conn.execute("SELECT chatroomname, memberlist FROM chatroom")
    members = {room: set(memberlist.split(";")) for room, memberlist in rooms}
    group_rows = [r for r in rows if r["talker"].endswith("@chatroom")]
    assert len(group_rows) > 100
    for r in group_rows:
        match = PREFIX.match(text(r["content"]))
        if r["isSend"] == 1 or r["type"] in (10000, 268445456):
            assert match is None, r
        else:
            assert match and match[1] in members[r["talker"]], r
    # private voice/sticker rows start "<sender>:<n>:…" — no newline, so never mistaken for a prefix
    assert not any(PREFIX.match(text(r["content"])) for r in rows if not r["talker"].endswith("@chatroom"))


def test_create_time_is_ms_and_increasing_per_chat(rows: list[dict]) -> None:
    last: dict[str, int] = {}
    for r in rows:
        assert 1_672_502_400_000 <= r["createTime"] < 1_750_000_000_000
        assert r["createTime"] > last.get(r["talker"], 0)
        last[r["talker"]] = r["createTime"]
    span_days = (rows[-1]["createTime"] - rows[0]["createTime"]) / 86_400_000
    assert 300 < span_days < 800
    svrids = [r["msgSvrId"] for r in rows]
    assert len(set(svrids)) == N and min(svrids) > 0


def test_csv_headers_equal_db_columns_and_bom(result: SynthResult) -> None:
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    for table in TABLES:
        raw = (result.csv_dir / f"{table}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == (table == "message")
        header = raw.decode("utf-8-sig").split("\r\n", 1)[0].split(",")
        assert header == [c[1] for c in conn.execute(f"PRAGMA table_info({table})")] == schema.columns(table)
    assert {t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "message",
        "rcontact",
        "userinfo",
        "chatroom",
        "qmessage",
        "img_flag",
    }


def test_csv_rows_match_db_rows(result: SynthResult, rows: list[dict]) -> None:
    with result.csv_dir.joinpath("message.csv").open(encoding="utf-8-sig", newline="") as fh:
        records = list(csv.DictReader(fh))
    for r, rec in zip(rows, records, strict=True):
        assert rec["content"] == text(r["content"]) and rec["type"] == str(r["type"])
        assert rec["lvbuffer"] == r["lvbuffer"].hex() and rec["transContent"] == ""


def test_planted_pii_is_in_the_messages(rows: list[dict], manifest: dict, result: SynthResult) -> None:
    planted = manifest["planted_pii"]
    assert set(CANARIES) <= set(planted) and len(planted) >= 6
    everything = "\n".join(text(r["content"]) for r in rows)
    csv_text = result.csv_dir.joinpath("message.csv").read_text(encoding="utf-8-sig")
    for value in planted:
        assert value in everything and value in csv_text, value
    senders = {r["isSend"] for r in rows if any(v in text(r["content"]) for v in planted)}
    assert senders == {0, 1}  # both self and friends leak something
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    info = dict(conn.execute("SELECT id, value FROM userinfo"))
    assert info[2] == manifest["self_wxid"] == result.self_wxid and info[4] == manifest["self_nickname"]
    assert info[6] in planted


def test_every_pii_form_is_planted(rows: list[dict], manifest: dict) -> None:
    """Each way of typing PII the pseudonymiser knows is in every history, its values in the manifest."""
    messages = {text(r["content"]) for r in rows}
    lines = [line for _, said, answers in PII_FORMS for line in (said, *answers)]
    bubbles = [b for line in lines for b in line.split("<s>") if "{" in b]
    for bubble in bubbles:
        shape = re.compile("(.+?)".join(re.escape(part) for part in re.split(r"\{\w+\}", bubble)))
        found = (m for m in map(shape.fullmatch, messages) if m)
        assert any(set(m.groups()) <= set(manifest["planted_pii"]) for m in found), bubble


def test_odd_rows_are_where_the_manifest_says(rows: list[dict], manifest: dict) -> None:
    odd = manifest["odd_rows"]
    (bad,) = odd["invalid_utf8"]
    content = rows[bad - 1]["content"]
    assert isinstance(content, bytes)
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    assert rows[odd["unknown_type"][0] - 1]["type"] == 999999
    broken = rows[odd["malformed_xml"][0] - 1]
    assert broken["type"] == 49
    with pytest.raises(ET.ParseError):
        ET.fromstring(PREFIX.sub("", broken["content"]))
    assert sum(len(ids) for ids in odd.values()) <= max(3, N // 1000)


def test_roomdata_decodes_to_the_group_nicknames(result: SynthResult) -> None:
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    nick = dict(conn.execute("SELECT username, nickname FROM rcontact"))
    kind = dict(conn.execute("SELECT username, type FROM rcontact"))
    renamed, everyone = 0, set()
    rooms = conn.execute("SELECT memberlist, displayname, roomdata FROM chatroom")
    for memberlist, displayname, blob in rooms:
        wxids = memberlist.split(";")
        assert len(displayname.split("、")) == len(wxids) and 4 <= len(wxids) <= 12
        decoded, _ = blackboxprotobuf.decode_message(blob, ROOMDATA_TYPEDEF)
        members = decoded["1"]
        assert [m["1"] for m in members] == wxids
        renamed += sum(1 for m in members if m.get("2") and m["2"] != nick.get(m["1"]))
        everyone.update(wxids)
    assert renamed > 0
    # strangers: some members have no rcontact row at all, some a row that is not a friend
    assert any(w not in nick for w in everyone) and any(w in kind and not kind[w] & 1 for w in everyone)


def test_contacts_prefs_and_manifest(result: SynthResult, manifest: dict) -> None:
    conn = android_crypto.open_encrypted(result.db_path, result.key)
    contacts = conn.execute("SELECT username, type, verifyFlag FROM rcontact").fetchall()
    friends = [u for u, t, _ in contacts if t & 1 and u.startswith("wxid_") and u != result.self_wxid]
    assert 15 <= len(friends) <= 40
    assert any(u.startswith("gh_") and v != 0 for u, _, v in contacts)
    assert "filehelper" in {u for u, _, _ in contacts}
    uin = ET.parse(result.prefs_dir / "system_config_prefs.xml").find("int[@name='default_uin']")
    auth = ET.parse(result.prefs_dir / "auth_info_key_prefs.xml").find("int[@name='_auth_uin']")
    assert uin is not None and auth is not None and uin.get("value") == auth.get("value") == manifest["uin"]
    assert 3 <= manifest["groups"] <= 6 and manifest["key"] == result.key


def test_pii_generators_are_valid() -> None:
    rng = random.Random(5)
    for _ in range(200):
        idno, card = id_number(rng), bank_card(rng)
        assert len(idno) == 18 and id_check_digit(idno[:17]) == idno[17]
        assert len(card) in (16, 19) and luhn_ok(card)
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert id_check_digit("11010519491231002") == "X"


def test_facts_are_said_consistently_to_several_friends_and_probes_are_new(rows: list[dict], manifest: dict) -> None:
    """The persona's facts come up in its own replies, to more than one friend, over months; each
    probe asks in words the history never used, after its last message, by a real friend."""
    from wechat_avatar.synth.facts import FACTS

    assert [f["key"] for f in manifest["facts"]] == [f.key for f in FACTS]
    mine = [r for r in rows if r["isSend"] == 1 and r["type"] == 1]
    everything = "\n".join(text(r["content"]) for r in rows)
    for fact in manifest["facts"]:
        said = [r for r in mine if any(word in text(r["content"]) for word in fact["match"])]
        assert len({r["talker"] for r in said}) >= 2, fact  # different friends
        days = (said[-1]["createTime"] - said[0]["createTime"]) / 86_400_000
        assert days > 60, fact  # across months
        assert manifest["fact_mentions"][fact["key"]] >= 3
    assert not any(word in text(r["content"]) for r in mine for word in ("钻石", "黄金"))  # one rank, never another
    friends = {r["talker"] for r in rows if not r["talker"].endswith("@chatroom")}
    last_ms = manifest["time_range_ms"][1]
    assert {p["fact"] for p in manifest["probes"]} == {f["key"] for f in manifest["facts"]}
    for probe in manifest["probes"]:
        assert probe["question"] not in everything and probe["ts_ms"] > last_ms
        assert probe["friend_wxid"] in friends and probe["friend"]


def test_facts_and_probes_are_the_same_in_every_format(tmp_path: Path) -> None:
    from wechat_avatar.synth.formats import synth_export

    a = json.loads(synth_export(tmp_path / "a", "android", 800, seed=5).manifest_path.read_text(encoding="utf-8"))
    b = json.loads(synth_export(tmp_path / "b", "chatlog", 800, seed=5).manifest_path.read_text(encoding="utf-8"))
    assert a["probes"] == b["probes"] and a["facts"] == b["facts"] and a["fact_mentions"] == b["fact_mentions"]
