"""The dataset builder on small hand-built stores (golden outputs) and on the synthetic export."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message
from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.build import build_dataset
from wechat_avatar.errors import UsageError
from wechat_avatar.render import render
from wechat_avatar.store import Store
from wechat_avatar.synth.phrases import PII_FORMS
from wechat_avatar.workspace import Workspace

ME = "wxid_me"
T0 = 1_687_360_000_000  # 2023-06-21, UTC ms
CONTACTS = [
    Contact(ME, nickname="乌冬面", kind=ContactKind.SELF),
    Contact("wxid_hu", nickname="Hu", remark="胡三行"),
    Contact("wxid_li", nickname="李四"),
    Contact("wxid_wang", nickname="王五", remark="老王"),
    Contact("1@chatroom", nickname="开黑群", kind=ContactKind.GROUP),
    Contact("gh_news", nickname="新闻早知道", kind=ContactKind.OFFICIAL),
]


def make_store(workspace: Path, rows: list[tuple[str, str, float, str]], base_type: int = 1) -> Path:
    """rows: (chat, sender, minutes after T0, text); sender ME is you."""
    with Store.open(Workspace(workspace)) as store, store.transaction():
        store.set_account(Account(ME, "乌冬面"))
        store.upsert_contacts(CONTACTS)
        store.upsert_members([Member("1@chatroom", "wxid_li", "李四在群里")])
        batch = []
        for i, (chat, sender, minutes, text) in enumerate(rows):
            typ = 47 if text == "[表情包]" else base_type
            content = "wxid_x:0:1:abc::0" if typ == 47 else text
            msg = Message("test:me", str(i), chat, sender, sender == ME, T0 + int(minutes * 60_000), typ, 0, content)
            batch.append((msg, render(msg.base_type, msg.sub_type, msg.content)))
        store.insert_messages(batch)
    return workspace


def build(workspace: Path, **dataset: Any) -> Any:
    cfg = AvatarConfig()
    cfg.dataset = cfg.dataset.model_copy(update=dataset)
    with Store.open(Workspace(workspace), create=False) as store:
        return build_dataset(store, Workspace(workspace), cfg)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def train(workspace: Path, fmt: str = "firefly") -> list[dict[str, Any]]:
    return jsonl(workspace / "dataset" / fmt / "train.jsonl")


def test_the_seeds_sample_byte_for_byte(tmp_path: Path) -> None:
    ws = make_store(tmp_path, [("wxid_hu", "wxid_hu", 0, "对"), ("wxid_hu", ME, 1, "好"),
                               ("wxid_hu", ME, 1.1, "开冲"), ("wxid_hu", ME, 1.2, "[呲牙]")])  # fmt: skip
    build(ws, test_ratio=0)
    assert (ws / "dataset" / "firefly" / "train.jsonl").read_text(encoding="utf-8") == (
        '{"conversation_id": 1, "category": "Conversation", '
        '"conversation": [{"human": "胡三行:对", "assistant": "乌冬面:好<s>开冲<s>[呲牙]"}]}\n'
    )
    system = "请你扮演一位微信用户“乌冬面”，并根据聊天记录以及不同用户的输入作出响应。"
    assert train(ws, "messages") == [{"messages": [
        {"role": "system", "content": system}, {"role": "user", "content": "胡三行:对"},
        {"role": "assistant", "content": "好<s>开冲<s>[呲牙]"}]}]  # fmt: skip
    assert train(ws, "sharegpt") == [{"system": system, "conversations": [
        {"from": "human", "value": "胡三行:对"}, {"from": "gpt", "value": "好<s>开冲<s>[呲牙]"}]}]  # fmt: skip


def test_context_window_sees_the_last_ten_messages(tmp_path: Path) -> None:
    rows = [("wxid_hu", "wxid_hu", i, f"第{i}句") for i in range(15)] + [("wxid_hu", ME, 16, "嗯哼")]
    build(make_store(tmp_path, rows), test_ratio=0)
    [sample] = train(tmp_path)
    assert sample["conversation"][0]["human"].split("\n") == [f"胡三行:第{i}句" for i in range(5, 15)]
    build(tmp_path, test_ratio=0, context_window=3)
    assert train(tmp_path)[0]["conversation"][0]["human"] == "胡三行:第12句\n胡三行:第13句\n胡三行:第14句"


def test_turns_alternate_and_each_reply_is_a_sample(tmp_path: Path) -> None:
    rows = [("wxid_hu", "wxid_hu", 0, "在吗"), ("wxid_hu", ME, 1, "在"), ("wxid_hu", "wxid_hu", 2, "打游戏吗"),
            ("wxid_hu", "wxid_hu", 2.5, "五排"), ("wxid_hu", ME, 3, "好"), ("wxid_hu", ME, 3.1, "开冲")]  # fmt: skip
    build(make_store(tmp_path, rows), test_ratio=0)
    first, second = train(tmp_path)
    assert first["conversation"] == [{"human": "胡三行:在吗", "assistant": "乌冬面:在"}]
    assert second["conversation"] == [
        {"human": "胡三行:在吗", "assistant": "乌冬面:在"},
        {"human": "胡三行:打游戏吗\n胡三行:五排", "assistant": "乌冬面:好<s>开冲"},
    ]


def test_sessions_split_on_long_silence(tmp_path: Path) -> None:
    rows = [
        ("wxid_hu", "wxid_hu", 0, "昨天的事"),
        ("wxid_hu", "wxid_hu", 7 * 60, "早"),
        ("wxid_hu", ME, 7 * 60 + 1, "早啊"),
    ]
    build(make_store(tmp_path, rows), test_ratio=0)
    assert train(tmp_path)[0]["conversation"][0]["human"] == "胡三行:早"
    build(tmp_path, test_ratio=0, session_gap_hours=0)  # the seed's behaviour: no split
    assert train(tmp_path)[0]["conversation"][0]["human"] == "胡三行:昨天的事\n胡三行:早"


def test_group_lines_carry_each_speakers_group_name(tmp_path: Path) -> None:
    rows = [("1@chatroom", "wxid_li", 0, "上号"), ("1@chatroom", "wxid_wang", 1, "来了"),
            ("1@chatroom", "wxid_hu", 1.5, "等我"), ("1@chatroom", ME, 2, "开冲")]  # fmt: skip
    build(make_store(tmp_path, rows), test_ratio=0)
    assert train(tmp_path)[0]["conversation"][0]["human"] == "李四在群里:上号\n老王:来了\n胡三行:等我"
    with pytest.raises(UsageError, match="group_excluded 4"):
        build(tmp_path, test_ratio=0, include_groups=False)


def test_every_message_is_used_or_has_a_reason(tmp_path: Path) -> None:
    rows = [("gh_news", "gh_news", 0, "今日新闻"), ("wxid_hu", ME, 1, "在吗"),  # you open: nothing to answer
            ("wxid_hu", "wxid_hu", 2, "在"), ("wxid_hu", ME, 3, "吃饭去"),
            ("wxid_li", "wxid_li", 4, "没人理我"),  # no reply at all
            ("wxid_hu", "wxid_hu", 500, "好的")]  # a later session you never answered  # fmt: skip
    result = build(make_store(tmp_path, rows), test_ratio=0)
    stats = result.stats
    assert stats.store_messages == 6 and stats.accounted == 6
    assert stats.used_messages == 2  # 在, 吃饭去: a context starts with a friend's line
    assert stats.drop_reasons == {"official_account": 1, "no_reply_in_session": 2, "reply_without_context": 1}


def test_cleaning_rules(tmp_path: Path) -> None:
    rows = []
    for i in range(3):  # the same filler exchange three times, in three sessions
        rows += [("wxid_hu", "wxid_hu", i * 600, "吃了吗"), ("wxid_hu", ME, i * 600 + 1, "好的")]
    rows += [("wxid_li", "wxid_li", 5000, "你是猪吧"), ("wxid_li", ME, 5001, "滚"),
             ("wxid_li", "wxid_li", 5002, "发张图"), ("wxid_li", ME, 5003, "[表情包]"),
             ("wxid_li", "wxid_li", 5004, "机密是多少"), ("wxid_li", ME, 5005, "机密是红色")]  # fmt: skip
    result = build(make_store(tmp_path, rows), test_ratio=0, blocked_words=["机密"])
    assert result.stats.samples_dropped == {"duplicate_filler": 2}
    texts = (tmp_path / "dataset" / "firefly" / "train.jsonl").read_text(encoding="utf-8")
    assert "机密" not in texts and "**是红色" in texts
    meta = jsonl(tmp_path / "dataset" / "meta.jsonl")
    assert [m["tags"] for m in meta if m["chat"] == "李四"] == [["profanity"], [], []]
    result = build(tmp_path, test_ratio=0, blocked_words=["机密"], blocked_action="drop",
                   drop_placeholder_replies=True, dedupe_filler=False, max_samples_per_chat=2)  # fmt: skip
    assert result.stats.samples_dropped == {"blocked_word": 1, "placeholder_only_reply": 1, "chat_cap": 1}
    assert result.stats.accounted == result.stats.store_messages


def test_split_is_by_session_and_deterministic(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run_cli("ingest", export.out, "--workspace", ws).returncode == 0
    first = build(ws, test_ratio=0.3)
    snapshot = {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")}
    build(ws, test_ratio=0.3)
    assert {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")} == snapshot
    manifest = json.loads((ws / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == {
        str(p.relative_to(ws / "dataset")): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((ws / "dataset").rglob("*.jsonl"))
    }
    assert manifest["config"]["test_ratio"] == 0.3 and manifest["store_messages"] == first.stats.store_messages
    meta = jsonl(ws / "dataset" / "meta.jsonl")
    train_sessions = {m["session"] for m in meta if m["split"] == "train"}
    test_sessions = {m["session"] for m in meta if m["split"] == "test"}
    assert train_sessions and test_sessions and not train_sessions & test_sessions
    assert first.stats.samples["test"] == len(jsonl(ws / "dataset" / "messages" / "test.jsonl"))
    assert (
        first.stats.accounted == first.stats.store_messages == json.loads(export.manifest_path.read_text())["messages"]
    )


def _masked(word: str) -> str:
    """A regex for a word of a synth template as a sample holds it: each {slot} a pseudonym, a
    URL maybe one whole pseudonym (when it is a secret itself)."""
    parts = (re.escape(json.dumps(part, ensure_ascii=False)[1:-1]) for part in re.split(r"\{\w+\}", word))
    shape = r"<[A-Z]+_\d+>".join(parts)
    return rf"(?:<URL_\d+>|{shape})" if word.startswith("http") else shape


def test_planted_pii_never_reaches_the_dataset(export: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert run_cli("ingest", export.out, "--workspace", ws).returncode == 0
    result = run_cli("dataset", "--workspace", ws)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(export.manifest_path.read_text())
    pii = [v for v in manifest["planted_pii"] if v not in manifest["canaries"]]
    assert pii
    for value in pii:
        found = subprocess.run(["grep", "-rlF", value, str(ws / "dataset")], capture_output=True, text=True)
        assert found.stdout == "", f"{value} leaked into {found.stdout}"
    private = json.loads((ws / "private" / "pii_map.json").read_text(encoding="utf-8"))
    assert all(any(value in original for original in private.values()) for value in pii)
    # every form synth plants reaches a sample, with each of its values a pseudonym
    samples = "\n".join(p.read_text(encoding="utf-8") for p in (ws / "dataset" / "messages").glob("*.jsonl"))
    bubbles = [b for _, said, answers in PII_FORMS for text in (said, *answers) for b in text.split("<s>") if "{" in b]
    for bubble in bubbles:
        assert re.search(r"\ ".join(map(_masked, bubble.split(" "))), samples), bubble
    assert (ws / "private" / "pii_map.json").stat().st_mode & 0o077 == 0
    # canaries are not PII: they stay, so the eval's privacy probe can test memorisation
    assert "PII replaced" in result.stdout and (ws / "dataset" / "report.html").exists()


def test_empty_store_and_failed_rebuilds_write_nothing(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)):
        pass
    result = run_cli("dataset", "--workspace", tmp_path)
    assert result.returncode == 2 and "has no messages" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "dataset").exists()
    make_store(tmp_path, [("wxid_hu", "wxid_hu", 0, "对"), ("wxid_hu", ME, 1, "好")])
    build(tmp_path, test_ratio=0)
    before = (tmp_path / "dataset" / "firefly" / "train.jsonl").read_bytes()
    with pytest.raises(UsageError, match="no samples"):
        build(tmp_path, only_chats=["nobody"])
    assert (tmp_path / "dataset" / "firefly" / "train.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db", "dataset", "private"]


def test_cli_flags(tmp_path: Path) -> None:
    make_store(tmp_path, [("wxid_hu", "wxid_hu", 0, "对"), ("wxid_hu", ME, 1, "好")])
    result = run_cli("dataset", "--workspace", tmp_path, "--format", "firefly", "--test-ratio", "0")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == [
        "firefly", "manifest.json", "meta.jsonl", "report.html"]  # fmt: skip
    bad = run_cli("dataset", "--workspace", tmp_path, "--test-ratio", "1.5")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --test-ratio") and "Traceback" not in bad.stderr
    bad = run_cli("dataset", "--workspace", tmp_path, "--format", "alpaca")
    assert bad.returncode == 2 and "--format" in bad.stderr


def test_unnamed_contacts_are_known_only_by_pseudonym(tmp_path: Path) -> None:
    rows = [("wxid_stranger42", "wxid_stranger42", 0, "你好 我是 wxid_stranger42"), ("wxid_stranger42", ME, 1, "你好")]
    build(make_store(tmp_path, rows), test_ratio=0)
    outputs = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "dataset").rglob("*") if p.is_file())
    assert "wxid_stranger42" not in outputs
    assert train(tmp_path)[0]["conversation"][0]["human"] == "<WXID_1>:你好 我是 <WXID_1>"
    assert jsonl(tmp_path / "dataset" / "meta.jsonl")[0]["chat"] == "<WXID_1>"


def test_the_writer_process_writes_what_the_serial_build_does(export: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from wechat_avatar.dataset import build as stage1

    ws = tmp_path / "ws"
    assert run_cli("ingest", export.out, "--workspace", ws).returncode == 0
    serial = build(ws, test_ratio=0.2)
    files = {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")}
    monkeypatch.setattr(stage1, "PARALLEL_MIN_MESSAGES", 1)
    parallel = build(ws, test_ratio=0.2)
    assert {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")} == files
    assert parallel.stats == serial.stats


def test_hand_assembled_lines_equal_json_dumps_of_the_records() -> None:
    from wechat_avatar.dataset import formats
    from wechat_avatar.dataset.window import Candidate, Line

    def line(i: int, is_self: bool, text: str) -> Line:
        return Line(i, is_self, "我" if is_self else '小"王\\', text, "text", i)

    tricky = ['引号"和\\反斜杠', "换\n行\t制表\x01控制", "emoji 😂 [捂脸]", "</script>"]
    turns = [[line(1, False, tricky[0]), line(2, False, tricky[1])], [line(3, True, tricky[2])],
             [line(4, False, tricky[3])]]  # fmt: skip
    sample = Candidate("c", "chat", False, "c:0", turns, [line(5, True, "好"), line(6, True, "行")])
    texts = formats.pairs(sample)
    encoded = [(formats.encode(u), formats.encode(a)) for u, a in texts]
    system = "扮演“我”"

    def dumps(record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False)

    prefix = formats.encode("我:")[:-1]
    assert formats.firefly_line(encoded, 7, prefix) == dumps(formats.firefly(texts, 7, "我"))
    assert formats.messages_line(encoded, formats.encode(system)) == dumps(formats.messages(texts, system))
    assert formats.sharegpt_line(encoded, formats.encode(system)) == dumps(formats.sharegpt(texts, system))


@pytest.mark.parametrize(("text", "rude"), [("滚", True), ("你有病吧", True), ("sb吧", True), ("滚动条", False),
                                            ("爬山去", False), ("gsb", False), ("好的", False)])  # fmt: skip
def test_profanity_lexicon_respects_word_edges(text: str, rude: bool) -> None:
    from wechat_avatar.dataset.clean import PROFANITY_PATTERN

    assert bool(PROFANITY_PATTERN.search(text)) is rude


def test_serving_prompts_are_the_samples_without_their_reply() -> None:
    """dataset.prompt (chat and serve) asks exactly what each written sample taught, for every window."""
    from wechat_avatar.dataset import formats
    from wechat_avatar.dataset.prompt import prompt
    from wechat_avatar.dataset.window import Candidate, Line, windows

    pattern = [False, False, True, False, True, True, False, False, False, True, False, True, True, True, False, True]
    lines = [Line(i, me, "我" if me else f"友{i % 3}", f"第{i}条\n消息", "text", i * 1000)
             for i, me in enumerate(pattern)]  # fmt: skip
    for window in (1, 3, 10):
        found = list(windows(lines, window))
        assert found
        for turns, reply in found:
            sample = formats.messages(formats.pairs(Candidate("c", "c", False, "k", turns, reply)), "系统")
            before = lines[: reply[0].id]
            assert prompt(before, "系统", window) == sample["messages"][:-1]
    gap = prompt(lines[:2], "系统", 10, session_gap_ms=500)  # 1 s apart: two sessions, the last one only
    assert gap == [{"role": "system", "content": "系统"}, {"role": "user", "content": "友1:第1条 消息"}]
