"""Memory of your own history: what it indexes, what it recalls, and what it never shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SELF, build_android_db, run_cli

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.prompt import MEMORY_HEADER, Remembered, prompt
from wechat_avatar.dataset.window import Line
from wechat_avatar.errors import UsageError
from wechat_avatar.memory.build import build_memory
from wechat_avatar.memory.index import MemoryIndex
from wechat_avatar.memory.recall import Recall
from wechat_avatar.serve.engine import Persona
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace

ON = AvatarConfig.model_validate({"memory": {"enabled": True}})
HU = "wxid_hu"
DAY = 86_400_000
T0 = 1_700_000_000_000


def _build(ws: Path) -> object:
    with Store.open(Workspace(ws), create=False) as store:
        return build_memory(store, Workspace(ws), ON)


@pytest.fixture(scope="module")
def synth_memory(dataset_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = Path(shutil.copytree(dataset_workspace, tmp_path_factory.mktemp("memory") / "ws"))
    _build(ws)
    return ws


def test_recall_never_returns_the_own_session_or_later(synth_memory: Path) -> None:
    """Each exchange asked for with its own words: found once its session is over, never from inside it."""
    from wechat_avatar.memory import words

    recall = Recall.open(Workspace(synth_memory), ON)
    index = recall.index
    rows = index.conn.execute(
        "SELECT e.id, e.friend, e.said, e.reply, e.ts_ms, MAX(s.start_ms) FROM exchanges e JOIN sessions s "
        "ON s.chat_id = e.chat_id AND s.start_ms <= e.ts_ms GROUP BY e.id ORDER BY e.id LIMIT 300"
    ).fetchall()
    assert len(rows) == 300
    found_after = 0
    for exchange_id, friend, said, reply, ts_ms, start in rows:
        query = words.query(f"{said} {reply}")
        inside = index.matches(query, start, 1000) + index.matches(query, start, 1000, friend=friend)
        assert all(m.exchange.ts_ms < start for m in inside)  # nothing from the session or after it
        assert exchange_id not in {m.exchange.id for m in inside}
        assert all(_ms(m) < start for m in recall(friend, f"{said} {reply}", before_ms=start))
        later = index.matches(query, ts_ms + 1, 1000)
        found_after += exchange_id in {m.exchange.id for m in later}
    assert found_after > 250  # the same question does find it once it is in the past


def _ms(m: Remembered) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    # the block shows days: a memory's day starts before the cutoff
    return int(datetime.strptime(m.day, "%Y-%m-%d").replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)


def test_eval_samples_remember_only_what_came_before_their_session(synth_memory: Path) -> None:
    """Every held-out sample gets memories strictly older than its own session's first message."""
    import sqlite3

    from wechat_avatar.eval.run import load_test
    from wechat_avatar.memory.samples import SampleRecall, heard, split_sessions

    ws = Workspace(synth_memory)
    keys, samples = split_sessions(ws, "test"), load_test(ws)
    metas = [json.loads(line) for line in (ws.dataset / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
    ids = [m["message_ids"] for m in metas if m["split"] == "test"]
    assert len(keys) == len(samples) == len(ids) > 20
    recall = SampleRecall(Recall.open(ws, ON))
    db = sqlite3.connect(ws.store)
    unbounded_reaches_own_session = 0
    for s in samples:
        start = recall.recall.index.session_start(keys[s.index])
        marks = ",".join("?" * len(ids[s.index]))
        times = [t for (t,) in db.execute(f"SELECT ts_ms FROM messages WHERE id IN ({marks})", ids[s.index])]
        assert start is not None and start <= min(times)  # the key is the sample's own session
        picked = recall.exchanges(keys[s.index], s.context)
        assert all(e.ts_ms < start for e in picked)
        friend, said = heard(s.context) or ("", "")
        unbounded_reaches_own_session += any(e.ts_ms >= start for e in recall.recall.pick(friend, said, 2**62))
    assert recall.remembered > len(samples) // 2 and recall.unknown_sessions == 0
    assert unbounded_reaches_own_session > 0  # without the cutoff the same questions would see their own session


def test_probe_memories_hold_the_fact(synth_memory: Path, export: object) -> None:
    """The synthetic persona's probes find the exchange that states the answer (before the probe)."""
    manifest = json.loads(export.manifest_path.read_text(encoding="utf-8"))  # type: ignore[attr-defined]
    match = {f["key"]: f["match"] for f in manifest["facts"]}
    recall = Recall.open(Workspace(synth_memory), ON)
    hits = 0
    for probe in manifest["probes"]:
        got = recall(probe["friend"], probe["question"], probe["ts_ms"])
        hits += any(word in m.reply for m in got for word in match[probe["fact"]])
    assert hits >= len(manifest["probes"]) // 3, hits


def _db(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True)
    return build_android_db(path, rows)


def _messages(start_id: int, chat: str, pairs: list[tuple[str, str]], t0: int) -> list[tuple]:
    rows, i = [], start_id
    for n, (said, reply) in enumerate(pairs):
        t = t0 + n * DAY  # a day apart: each pair is a session of its own
        rows += [(i, 9000 + i, 1, 0, t, chat, said), (i + 1, 9001 + i, 1, 1, t + 60_000, chat, reply)]
        i += 2
    return rows


def test_index_updates_after_a_new_ingest_without_rebuilding(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    first = _db(tmp_path / "a" / "EnMicroMsg.db", [
        *_messages(1, HU, [("你老家哪的", "绍兴的"), ("晚上吃啥", "酸菜鱼")], T0),
        *_messages(100, "wxid_zhou", [("练车了吗", "明天去")], T0),
    ])  # fmt: skip
    assert run_cli("ingest", first, "--workspace", ws).returncode == 0
    report = _build(ws)
    assert report.rebuilt and report.chats_cut == 2 and report.exchanges == 3  # type: ignore[attr-defined]
    index = MemoryIndex(Workspace(ws).memory_index)
    zhou_row = index.conn.execute("SELECT rowid, * FROM exchanges WHERE chat_id = 'wxid_zhou'").fetchall()
    index.close()
    second = _db(tmp_path / "b" / "EnMicroMsg.db", _messages(200, HU, [("猫叫啥", "年糕")], T0 + 5 * DAY))
    assert run_cli("ingest", second, "--workspace", ws).returncode == 0
    again = _build(ws)
    assert not again.rebuilt and again.chats_cut == 1 and again.chats_unchanged == 1  # type: ignore[attr-defined]
    assert again.exchanges == 4  # type: ignore[attr-defined]
    index = MemoryIndex(Workspace(ws).memory_index)
    assert index.conn.execute("SELECT rowid, * FROM exchanges WHERE chat_id = 'wxid_zhou'").fetchall() == zhou_row
    index.close()
    recall = Recall.open(Workspace(ws), ON)
    assert [m.reply for m in recall("胡三行", "你家猫叫啥")] == ["年糕"]
    nothing_new = _build(ws)
    assert nothing_new.chats_cut == 0 and nothing_new.chats_unchanged == 2  # type: ignore[attr-defined]


def test_pii_in_memories_gets_the_datasets_pseudonyms(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    db = _db(tmp_path / "a" / "EnMicroMsg.db", _messages(1, HU, [
        ("你电话多少", "13812345678 打这个"), ("邮箱呢", "udon@example.com"), ("再发一次号码", "13812345678"),
        ("在吗", "在"), ("明天见", "好"),
    ], T0))  # fmt: skip
    assert run_cli("ingest", db, "--workspace", ws).returncode == 0
    assert run_cli("dataset", "--workspace", ws, "--test-ratio", "0").returncode == 0
    _build(ws)
    train = (ws / "dataset" / "messages" / "train.jsonl").read_text(encoding="utf-8")
    for stored in Workspace(ws).memory.iterdir():  # the index and any journal beside it
        assert b"13812345678" not in stored.read_bytes() and b"udon@example.com" not in stored.read_bytes()
    recall = Recall.open(Workspace(ws), ON)
    replies = {m.reply for m in recall("胡三行", "电话 号码 邮箱")}
    assert replies == {"<PHONE_1> 打这个", "<EMAIL_1>", "<PHONE_1>"}
    assert "<PHONE_1> 打这个" in train and "<EMAIL_1>" in train  # the very pseudonyms of the dataset


def test_empty_history_says_so_and_no_memory_means_no_block(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    db = _db(tmp_path / "a" / "EnMicroMsg.db", [(1, 9001, 1, 0, T0, HU, "在吗"), (2, 9002, 1, 0, T0, HU, "?")])
    assert run_cli("ingest", db, "--workspace", ws).returncode == 0
    built = run_cli("memory", "build", "--workspace", ws)
    assert built.returncode == 0 and "0 exchanges" in built.stdout and "no replies of yours" in built.stderr
    with pytest.raises(UsageError, match="holds no exchanges of yours") as caught:
        Recall.open(Workspace(ws), ON)
    assert "memory build" in (caught.value.hint or "")
    with pytest.raises(UsageError, match="does not exist"):
        Recall.open(Workspace(tmp_path / "nowhere"), ON)
    lines = [Line(1, False, "胡三行", "在吗", "text", T0)]
    plain = prompt(lines, "SYSTEM", 10)
    assert prompt(lines, "SYSTEM", 10, memories=[]) == plain and MEMORY_HEADER not in json.dumps(plain)
    persona = Persona("乌冬面", "SYSTEM", 10, 0)
    assert persona.prompt(lines) == plain  # memory off: the prompt of old, byte for byte


def test_memory_block_follows_the_system_prompt(tmp_path: Path) -> None:
    remembered = [Remembered("2023-05-02", "胡三行", "你是哪里人来着", "绍兴的<s>黄酒那个绍兴")]
    lines = [Line(1, False, "胡三行", "你老家哪的", "text", T0)]
    with_memory = prompt(lines, "SYSTEM", 10, memories=remembered)
    assert with_memory[0]["content"] == (
        f"SYSTEM\n\n{MEMORY_HEADER}\n[2023-05-02 胡三行] 胡三行:你是哪里人来着 → 你:绍兴的<s>黄酒那个绍兴"
    )
    assert with_memory[1:] == prompt(lines, "SYSTEM", 10)[1:]


def test_recall_keeps_to_top_k_and_the_token_budget(synth_memory: Path) -> None:
    tight = AvatarConfig.model_validate({"memory": {"enabled": True, "top_k": 3, "token_budget": 60}})
    recall = Recall.open(Workspace(synth_memory), tight)
    from wechat_avatar.dataset.prompt import memory_line

    for heard in ("今晚上号吗", "中午吃啥", "周末去哪玩", "你家猫怎么样"):
        got = recall("胡三行", heard)
        assert 0 < len(got) <= 3 and sum(len(memory_line(m)) + 1 for m in got) <= 60


def test_cli_ws_without_store_is_one_line(tmp_path: Path) -> None:
    result = run_cli("memory", "build", "--workspace", tmp_path / "empty")
    assert result.returncode != 0 and "Traceback" not in result.stderr and "ingest" in result.stderr


assert SELF  # the hand-built databases' account


def _jsonl(dataset: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*.jsonl"))}


def test_memory_off_leaves_the_dataset_byte_identical(dataset_workspace: Path, tmp_path: Path) -> None:
    today = _jsonl(dataset_workspace / "dataset")  # built without any memory setting
    for n, memory in enumerate(("enabled: false", "enabled: true\n  in_training: false")):
        ws = Path(shutil.copytree(dataset_workspace, tmp_path / f"ws{n}"))
        config = tmp_path / f"avatar{n}.yaml"
        config.write_text(f"memory:\n  {memory}\n", encoding="utf-8")
        built = run_cli("dataset", "--workspace", ws, "--config", config)
        assert built.returncode == 0, built.stderr
        assert _jsonl(ws / "dataset") == today and "memory in training" not in built.stdout
        assert not Workspace(ws).memory_index.exists()


def test_training_samples_carry_memories_from_before_their_session(dataset_workspace: Path, tmp_path: Path) -> None:
    from wechat_avatar.memory.samples import split_sessions

    ws = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    config = tmp_path / "avatar.yaml"
    config.write_text("memory:\n  enabled: true\n", encoding="utf-8")
    plain = _jsonl(ws / "dataset")
    Workspace(ws).memory.mkdir()
    Workspace(ws).memory_profile.write_text("notes: 在杭州工作\n", encoding="utf-8")  # an edited profile
    persona = "关于你（你自己的说话习惯）：\n在杭州工作"
    built = run_cli("dataset", "--workspace", ws, "--config", config)
    assert built.returncode == 0, built.stderr
    got = _jsonl(ws / "dataset")
    assert "memory in training" in built.stdout
    for name in ("messages/test.jsonl", "sharegpt/test.jsonl", "firefly/train.jsonl", "firefly/test.jsonl"):
        assert got[name] == plain[name]  # held out, or no system prompt to carry memories
    before = [json.loads(line)["messages"] for line in plain["messages/train.jsonl"].splitlines()]
    after = [json.loads(line)["messages"] for line in got["messages/train.jsonl"].splitlines()]
    shared = [json.loads(line) for line in got["sharegpt/train.jsonl"].splitlines()]
    assert len(before) == len(after) == len(shared)
    index = MemoryIndex(Workspace(ws).memory_index)
    held_out = index.session_exchanges(set(split_sessions(Workspace(ws), "test")))
    assert held_out  # there are held-out exchanges a memory could have leaked
    keys = split_sessions(Workspace(ws), "train")
    carried = 0
    for old, new, share, key in zip(before, after, shared, keys, strict=True):
        assert new[1:] == old[1:] and share["system"] == new[0]["content"]
        system = f"{old[0]['content']}\n\n{persona}"  # the persona block in every training sample
        assert new[0]["content"].startswith(system)
        if new[0]["content"] == system:
            continue
        carried += 1
        block = new[0]["content"].removeprefix(f"{system}\n\n")
        assert block.startswith(MEMORY_HEADER)
        start = index.session_start(key)
        for line in block.split("\n")[1:]:
            said, _, reply = line.partition("] ")[2].partition(":")[2].rpartition(" → 你:")
            rows = index.conn.execute("SELECT id, ts_ms FROM exchanges WHERE said = ? AND reply = ?",
                                      (said, reply)).fetchall()  # fmt: skip
            assert any(i not in held_out and ts < start for i, ts in rows), line  # older, and never held out
    manifest = json.loads((ws / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    assert carried == manifest["memory"]["remembered"] > len(after) // 2
    import hashlib

    assert manifest["files"]["messages/train.jsonl"] == hashlib.sha256(got["messages/train.jsonl"]).hexdigest()


def test_profile_mines_address_catchphrases_stickers_hours_places_and_names(tmp_path: Path) -> None:
    from wechat_avatar.memory import profile

    ws = tmp_path / "ws"
    db = _db(tmp_path / "a" / "EnMicroMsg.db", [
        *_messages(1, HU, [("在吗", "哥 在的<s>笑死<s>[旺柴]"), ("吃啥", "哥 我和小雨在杭州<s>笑死<s>[旺柴]"),
                           ("周末呢", "去杭州找小雨<s>笑死"), ("好", "哥 我跟小雨说了杭州见<s>[旺柴]")], T0),
        *_messages(100, "wxid_zhou", [("练车了吗", "明天去<s>[手机图片]"), ("考了吗", "明天去"),
                                      ("然后", "明天去")], T0),
    ])  # fmt: skip
    assert run_cli("ingest", db, "--workspace", ws).returncode == 0
    before = run_cli("memory", "profile", "--workspace", ws)
    assert before.returncode != 0 and "memory build" in before.stderr and "Traceback" not in before.stderr
    _build(ws)
    made = run_cli("memory", "profile", "--workspace", ws)
    assert made.returncode == 0, made.stderr
    mined = profile.read(Workspace(ws).memory_profile)
    assert mined["address"] == {"胡三行": "哥"}  # 周先生 was never addressed twice
    assert mined["catchphrases"] == ["笑死", "明天去"] and mined["stickers"] == ["[旺柴]"]  # [手机图片] is a photo
    assert mined["active_hours"] == [6] and mined["places"] == ["杭州"] and mined["names"] == ["小雨"]
    assert "口头禅：笑死、明天去" in made.stdout and "profile mined" in made.stdout
    # your edits are kept, and with memory on they are the system prompt's persona block
    edited = Workspace(ws).memory_profile.read_text(encoding="utf-8").replace("notes: ''", "notes: 在杭州工作")
    Workspace(ws).memory_profile.write_text(edited, encoding="utf-8")
    again = run_cli("memory", "profile", "--workspace", ws)
    assert again.returncode == 0 and "kept" in again.stdout and "在杭州工作" in again.stdout
    on = Persona.of(Workspace(ws), ON)
    off = Persona.of(Workspace(ws), AvatarConfig())
    assert on.system == f"{off.system}\n\n{profile.block(profile.read(Workspace(ws).memory_profile))}"
    assert on.system.endswith("在杭州工作") and profile.PERSONA_HEADER not in off.system
    Workspace(ws).memory_profile.write_text("address: [unclosed", encoding="utf-8")
    broken = run_cli("memory", "profile", "--workspace", ws)
    assert broken.returncode != 0 and "not valid YAML" in broken.stderr and "Traceback" not in broken.stderr
