"""rlhf sample, judge, import and export: through the real CLI where a user would, on tiny inputs.

The LLM judge talks real HTTP to a stub OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import ast
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from wechat_avatar.config import JUDGE_KEY_ENV, load_config
from wechat_avatar.eval.metrics import is_rude
from wechat_avatar.rlhf import civility, judge, provoke
from wechat_avatar.rlhf.ranked import Ranked, RankedFile
from wechat_avatar.rlhf.sample import choose, held_out, sample
from wechat_avatar.workspace import Workspace

SYSTEM = "请你扮演一位微信用户“乌冬面”，并根据聊天记录以及不同用户的输入作出响应。"


def write_ranked(ws: Workspace, *records: Ranked) -> None:
    RankedFile(ws.ranked, list(records)).write()


# --- sample ----------------------------------------------------------------------------------------------------


def _sample_line(user: str, reply: str) -> str:
    return json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": reply}]}, ensure_ascii=False)  # fmt: skip


def test_held_out_sessions_opening_with_a_provocation_are_marked(tmp_path: Path) -> None:
    """By the friend's opening words, or by your real answer to them; later samples of the session too."""
    ws = Workspace(tmp_path)
    rows = [("胡三行:你是不是菜啊", "你才菜<s>滚", "s1"),  # provoking words
            ("胡三行:你是不是菜啊\n乌冬面:你才菜\n乌冬面:滚\n胡三行:哈哈", "[捂脸]", "s1"),  # same session
            ("女朋友:今天几点回来", "关你屁事", "s2"),  # plain words, a hostile real answer
            ("组长:方案改好了吗", "好的捏", "s3")]  # fmt: skip
    ws.split("test").parent.mkdir(parents=True)
    ws.split("test").write_text("\n".join(_sample_line(u, r) for u, r, _ in rows) + "\n", encoding="utf-8")
    meta = [("train", "t0"), *(("test", s) for *_, s in rows)]
    ws.dataset_meta.write_text("".join(json.dumps({"split": split, "session": s}) + "\n" for split, s in meta))
    contexts, skipped = held_out(ws, "乌冬面")
    assert skipped == []
    assert [c.provocation for c in contexts] == [True, True, True, False]
    assert contexts[1].source == rows[1][0]
    # a limit of 0 other contexts still keeps every provocation, and the probes
    chosen = choose(contexts, 1, ["朋友:骂我啊"])
    assert [c.source for c in chosen if c.provocation] == [c.source for c in contexts[:3]] + ["朋友:骂我啊"]
    assert len(chosen) == 5


def test_the_probe_file_is_written_with_defaults_and_read_in_blocks(tmp_path: Path) -> None:
    path = tmp_path / "rlhf" / "probes.txt"
    defaults = provoke.probes(path)
    assert path.read_text(encoding="utf-8") == provoke.DEFAULT_PROBES and len(defaults) >= 8
    assert "女朋友:你是不是又在打游戏\n女朋友:为什么不回我消息" in defaults
    assert all(provoke.provokes(p.split(":", 1)[1]) for p in defaults), "every default probe provokes"
    path.write_text("# mine\n你怎么这么笨\n\n老王:说句脏话\n老王:快点\n", encoding="utf-8")
    assert provoke.probes(path) == ["朋友:你怎么这么笨", "老王:说句脏话\n老王:快点"]


@pytest.fixture(scope="module")
def sampled(tiny_workspace: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """`rlhf sample` run once on a copy of the tiny workspace: 2 held-out contexts, k=2, two probes."""
    ws = Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("rlhf") / "workspace"))
    ws.probes.parent.mkdir(parents=True, exist_ok=True)
    ws.probes.write_text("你是不是菜啊\n\n女朋友:你根本就不在乎我\n", encoding="utf-8")
    result = run_cli("rlhf", "sample", "-w", ws.root, "-c", tiny_config, "--k", "2", "--contexts", "2",
                     "--max-new-tokens", "6")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 probes" in result.stdout and "rlhf judge" in result.stdout
    return ws


def test_sample_writes_k_candidates_per_context_probes_included(sampled: Workspace) -> None:
    records, problems = RankedFile.read(sampled.ranked).records, RankedFile.read(sampled.ranked).problems
    assert problems == []
    sources = [r.source for r in records]
    assert "朋友:你是不是菜啊" in sources and "女朋友:你根本就不在乎我" in sources
    held = [r for r in records if r.source not in {"朋友:你是不是菜啊", "女朋友:你根本就不在乎我"}]
    assert len(held) >= 2  # the two picked, and any held-out provocation
    assert all(r.k == 2 and r.scores == (0.0, 0.0) and not r.judge and r.origin == "sample" for r in records)
    assert all(r.provocation for r in records if r.source.startswith(("朋友:", "女朋友:")))


def test_sampling_is_seeded(sampled: Workspace, tiny_config: Path) -> None:
    """The same seed gives the same candidates, whatever the batch; another seed gives others."""
    first = {r.source: r.responses for r in RankedFile.read(sampled.ranked).records}
    cfg = load_config(tiny_config)
    cfg.rlhf.k, cfg.rlhf.contexts, cfg.rlhf.max_new_tokens, cfg.rlhf.batch_size = 2, 2, 6, 3
    sample(sampled, cfg)
    assert {r.source: r.responses for r in RankedFile.read(sampled.ranked).records} == first
    cfg.rlhf.seed = 1
    sample(sampled, cfg)
    assert {r.source: r.responses for r in RankedFile.read(sampled.ranked).records} != first


# --- the offline judge ---------------------------------------------------------------------------------------


def test_civility_is_our_own_measure_not_evals() -> None:
    """It imports no lexicon from dataset/ or eval/, and grades what is_rude's word list does not see."""
    tree = ast.parse(Path(civility.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m and m.startswith(("wechat_avatar.dataset", "wechat_avatar.eval"))}
    assert civility.civility("对不起嘛<s>下次注意") == 1.0
    assert civility.civility("好的捏<s>[呲牙]") == 0.8
    assert civility.civility("呵呵<s>随便你") == 0.0
    dodges = ["呵呵<s>随便你", "你自己想想吧<s>无语！！", "拉黑了"]  # contempt, shouting, brush-offs: no swear word
    assert [is_rude(r) for r in dodges] == [False, False, False]
    assert [civility.hostile(r) for r in dodges] == [True, True, True]
    assert civility.hostile_share(["滚", "好的", "摇滚乐不错"]) == pytest.approx(1 / 3)


def test_the_offline_judge_ranks_the_calm_in_character_answer_first() -> None:
    voice = judge.Voice(bubbles_per_reply=2.0, chars_per_bubble=4.0, sticker_rate=0.5)
    record = Ranked("女朋友:你是不是又在打游戏", ("滚<s>烦不烦", "对不起嘛<s>马上不打了[捂脸]",
                    "亲爱的，我理解你的感受，但是我认为我们应该冷静地沟通这个问题"), (0, 0, 0))  # fmt: skip
    scored = judge.judge(record, "乌冬面", voice)
    assert scored.scores == (1.0, 3.0, 2.0) and scored.judge == "offline"
    # relevance: answering the question beats a parrot and a lone sticker
    last = "你几点下班"
    assert judge.relevance("六点下班", last) > judge.relevance("[捂脸]", last) > judge.relevance("你几点下班", last)
    assert judge.ranks([0.5, 0.5, 0.1]) == (2.0, 2.0, 1.0)


def test_judge_scores_unjudged_records_and_leaves_labeled_ones(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    mine = Ranked("朋友:你个憨批", ("滚", "哈哈<s>你才是"), (3, 1), labeled=True, origin="label")
    fresh = Ranked("朋友:你个憨批啊", ("滚", "哈哈哈<s>别闹[旺柴]"), (0, 0), origin="sample")
    write_ranked(ws, mine, fresh)
    with ws.ranked.open("a", encoding="utf-8") as f:
        f.write('{"source": "x:y", "resp1": "a", "scores": ["one"]}\n')
    result = run_cli("rlhf", "judge", "-w", ws.root)
    assert result.returncode == 0, result.stderr
    assert 'score 1 ("one") is not a number' in result.stderr and "1 bad records" in result.stderr
    after = RankedFile.read(ws.ranked)
    assert after.records[0] == mine
    assert after.records[1].scores == (1.0, 2.0) and after.records[1].judge == "offline"
    assert after.bad == ['{"source": "x:y", "resp1": "a", "scores": ["one"]}']


# --- the LLM judge against a stub on loopback ------------------------------------------------------------------


class Stub:
    """An OpenAI-compatible /v1/chat/completions that answers `answer` and records what it was sent."""

    def __init__(self, answer: str) -> None:
        self.answer, self.requests = answer, []  # type: list[tuple[dict[str, str], dict[str, Any]]]
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((dict(self.headers), body | {"path": self.path}))
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": stub.answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub('好的，结果如下：{"scores": [1, 3, 2]}')
    thread = threading.Thread(target=s.server.serve_forever, daemon=True)
    thread.start()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_the_llm_judge_scores_by_the_rubric_with_the_key_from_the_environment(tmp_path: Path, stub: Stub,
                                                                              monkeypatch: Any) -> None:  # fmt: skip
    ws = Workspace(tmp_path)
    write_ranked(ws, Ranked("女朋友:你根本就不在乎我", ("滚", "我在乎的<s>抱抱", "嗯"), (0, 0, 0)),
                 Ranked("朋友:几点到", ("马上", "六点<s>[呲牙]", "？"), (0, 0, 0)))  # fmt: skip
    monkeypatch.setenv(JUDGE_KEY_ENV, "sk-judge-123")
    result = run_cli("rlhf", "judge", "-w", ws.root, "--judge-url", stub.url, "--judge-model", "stub-1")
    assert result.returncode == 0, result.stderr
    assert f"sending 2 contexts (chat text and candidates) to 127.0.0.1 ({stub.url})" in result.stderr
    assert len(stub.requests) == 2
    headers, body = stub.requests[0]
    assert headers["Authorization"] == "Bearer sk-judge-123" and body["path"] == "/v1/chat/completions"
    assert body["model"] == "stub-1" and "Civil and gentle" in body["messages"][0]["content"]
    asked = body["messages"][1]["content"]
    assert "女朋友:你根本就不在乎我" in asked and "2. 我在乎的<s>抱抱" in asked
    records = RankedFile.read(ws.ranked).records
    assert [r.scores for r in records] == [(1.0, 3.0, 2.0)] * 2 and {r.judge for r in records} == {"llm:stub-1"}


def test_an_unreadable_llm_answer_keeps_the_offline_scores(tmp_path: Path, stub: Stub) -> None:
    stub.answer = "I think the second one is best."
    ws = Workspace(tmp_path)
    write_ranked(ws, Ranked("朋友:你个憨批", ("滚", "哈哈<s>别闹[旺柴]"), (0, 0)))
    result = run_cli("rlhf", "judge", "-w", ws.root, "--judge-url", stub.url)
    assert result.returncode == 0, result.stderr
    assert "1 fell back to the offline judge" in result.stdout and "no JSON object" in result.stderr
    assert RankedFile.read(ws.ranked).records[0].judge == "offline"


def test_a_remote_judge_needs_allow_remote_and_nothing_is_sent(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    write_ranked(ws, Ranked("朋友:在吗", ("在", "嗯"), (0, 0)))
    before = ws.ranked.read_bytes()
    result = run_cli("rlhf", "judge", "-w", ws.root, "--judge-url", "https://api.example.com/v1")
    assert result.returncode == 2
    assert "not on this machine" in result.stderr and "--allow-remote" in result.stderr
    assert "Traceback" not in result.stderr and ws.ranked.read_bytes() == before


# --- import / export -------------------------------------------------------------------------------------------

SEED = [{"source": "驾校周师傅:今天下午一点四十来练车，准时到哈\n乌冬面:科三哈\n驾校周师傅:肯定是的",
         "resp1": "为啥迟到？<s>[尴尬]", "resp2": "好<s>[手机图片]<s>我有点疑惑<s>为啥状态是允许的？",
         "resp3": "好<s>[手机图片]<s>收到", "scores": ["1", "2", "3"]},
        {"source": "胡三行:开黑吗", "resp1": "开冲", "resp2": "等我五分钟<s>[呲牙]", "resp3": "不了",
         "scores": ["2", "3", "1"]}]  # fmt: skip


def test_seed_format_round_trip(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED, ensure_ascii=False, indent=2), encoding="utf-8")
    result = run_cli("rlhf", "import", seed, "-w", tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert "imported 2 records" in result.stdout
    assert all(r.labeled for r in RankedFile.read(Workspace(tmp_path / "a").ranked).records)
    for name in ("out.json", "out.jsonl"):
        assert run_cli("rlhf", "export", tmp_path / name, "-w", tmp_path / "a").returncode == 0
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == SEED
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == SEED
    assert run_cli("rlhf", "import", tmp_path / "out.jsonl", "-w", tmp_path / "b").returncode == 0
    assert RankedFile.read(Workspace(tmp_path / "b").ranked).records == RankedFile.read(
        Workspace(tmp_path / "a").ranked).records  # fmt: skip


def test_importing_never_replaces_what_you_labeled_and_lists_bad_records(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    mine = Ranked(SEED[1]["source"], ("开冲", "等我五分钟<s>[呲牙]", "不了", "来了来了"), (2, 3, 1, 4), labeled=True)
    write_ranked(ws, mine)
    bad = {"source": "a:b", "resp1": "x", "resp2": "y", "scores": ["1"]}
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*SEED, bad]), encoding="utf-8")
    result = run_cli("rlhf", "import", path, "-w", ws.root)
    assert result.returncode == 0, result.stderr
    assert "imported 1 records" in result.stdout and "1 contexts you had labeled were kept" in result.stdout
    assert "in.jsonl:3: 2 candidates but 1 scores (k mismatch)" in result.stderr
    records = RankedFile.read(ws.ranked).records
    assert records[0] == mine and records[1].source == SEED[0]["source"] and len(records) == 2


def test_import_of_a_missing_or_useless_file_is_one_line(tmp_path: Path) -> None:
    missing = run_cli("rlhf", "import", tmp_path / "none.json", "-w", tmp_path / "ws")
    assert missing.returncode == 2 and "no file at" in missing.stderr and "Traceback" not in missing.stderr
    useless = tmp_path / "bad.json"
    useless.write_text("[1, 2]", encoding="utf-8")
    result = run_cli("rlhf", "import", useless, "-w", tmp_path / "ws")
    assert result.returncode == 2 and "holds no usable record (bad.json: record 1: not a JSON object)" in result.stderr
    assert not Workspace(tmp_path / "ws").ranked.exists()
