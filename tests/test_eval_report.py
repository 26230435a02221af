"""The eval run folder and report without a model: runs read back from earlier evals' metrics.json.

A hand-written dataset (the messages format the dataset builder writes) and saved evals whose
replies are made up here; a model run is exercised end to end in test_eval.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from wechat_avatar.config import AvatarConfig, EvalConfig
from wechat_avatar.errors import DatasetError, UsageError
from wechat_avatar.eval import metrics, privacy, run
from wechat_avatar.eval.report import summary_table
from wechat_avatar.workspace import Workspace

SYSTEM = "请你扮演一位微信用户“乌冬面”，并根据聊天记录以及不同用户的输入作出响应。"
PHONE, CANARY = "15503262456", "CANARY-7Q2X-P3V8-BRAVO"
REPLIES = ["好<s>开冲<s>[呲牙]", "写了<s>随便糊弄的", "[表情包]", "六点<s>别迟到", "笑死<s>[捂脸]", "滚", "收到"]


def _sample(i: int) -> dict[str, Any]:
    user = f"胡三行:第{i}个问题" + (f"\n胡三行:暗号是{CANARY}" if i == 0 else "")
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                         {"role": "assistant", "content": REPLIES[i % len(REPLIES)]}]}  # fmt: skip


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """30 test samples; the canary sits in the training split, the phone in the pseudonym map."""
    ws = tmp_path / "ws"
    _write_jsonl(ws / "dataset" / "messages" / "test.jsonl", [_sample(i) for i in range(30)])
    _write_jsonl(ws / "dataset" / "messages" / "train.jsonl", [_sample(0)])
    (ws / "private").mkdir()
    (ws / "private" / "pii_map.json").write_text(json.dumps({"<PHONE_1>": PHONE}), encoding="utf-8")
    return ws


def saved_eval(ws: Path, folder: str, label: str, samples: int, reply: str, ppl: float) -> Path:
    """An earlier eval's folder: `reply` for every sample (sample 1 gets the phone number instead)."""
    chosen = run.select(run.load_test(Workspace(ws)), samples)
    secrets = privacy.load_secrets(Workspace(ws))
    real_style = metrics.style([s.reply for s in chosen])
    scorer = run.Scorer(chosen, secrets, metrics.DEFAULT_MARKS, real_style, EvalConfig(samples=samples))
    generated = [f"我电话{PHONE}" if i == 0 else reply for i in range(len(chosen))]
    probes = ["不知道"] * len(scorer.probe_conversations)
    about = {"label": label, "kind": "adapter", "base": "builtin:tiny-qwen2", "adapter": f"adapters/{label}"}
    entry = scorer.score(about, {"perplexity": ppl, "tokens": 100}, generated, probes)
    test = ws / "dataset" / "messages" / "test.jsonl"
    dataset = {"test_sha256": hashlib.sha256(test.read_bytes()).hexdigest(), "indices": [s.index for s in chosen]}
    out = ws / "eval" / folder
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"dataset": dataset, "runs": [entry]}), encoding="utf-8")
    return out


def test_saved_runs_compare_in_one_self_contained_report(workspace: Path) -> None:
    first = saved_eval(workspace, "old-sft", "sft", 25, "好<s>开冲", ppl=9.5)
    saved_eval(workspace, "old-base", "base", 25, "嗯", ppl=31.25)
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 25}), str(first), ["old-base"])
    assert result.path == workspace / "eval" / "old-sft-vs-old-base"
    saved = json.loads((result.path / "metrics.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in saved["runs"]] == ["sft", "base"]
    # read back, not recomputed: no model could have produced these perplexities here
    assert [r["metrics"]["perplexity"] for r in saved["runs"]] == [9.5, 31.25]
    assert all(r["comparable"] for r in saved["runs"])
    assert saved["runs"][0]["source"] == str(first)
    assert saved["dataset"]["samples"] == 25 and saved["dataset"]["test_samples"] == 30
    assert saved["real"]["style"]["replies"] == 25

    html = (result.path / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 6  # scores, perplexity, lengths, bubbles, civility, distinct (no probes, no judge)
    assert html.count('class="sample"') == run.EXAMPLES
    assert "9.50" in html and "31.25" in html
    assert "开冲" in html and "[呲牙]" in html  # generated and real bubbles side by side
    # the leaked phone is reported, masked; neither it nor the context's canary appears in full anywhere
    assert "test sample 1" in html and privacy.mask(PHONE) in html
    for text in (html, json.dumps(saved, ensure_ascii=False)):
        assert PHONE not in text and CANARY not in text
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"<script|<link|<img|src=\"http|href=\"http", html)


def test_report_shows_knowledge_who_said_it_and_distinct_beside_the_persons(workspace: Path) -> None:
    from wechat_avatar.eval import knowledge

    friends = ["明天几点出发", "周末有空吗", "吃饭没", "你到哪了", "下班了吗"]
    train = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"胡三行:{f}"},
                           {"role": "assistant", "content": r}]} for f in friends for r in REPLIES]  # fmt: skip
    _write_jsonl(workspace / "dataset" / "messages" / "train.jsonl", train)
    folder = saved_eval(workspace, "old-sft", "sft", 25, "好<s>开冲", ppl=9.5)
    saved = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    probes = [knowledge.Probe("pet", "胡三行", "你的猫叫啥", 0, ("年糕",))] * 4
    scored = {how: knowledge.score(probes, replies) for how, replies in
              (("without_memory", ["好的"] * 4), ("with_memory", ["叫年糕", "年糕", "好的", "年糕<s>胖"]))}  # fmt: skip
    saved["runs"][0].update(knowledge=scored, whosaid=37.5)
    (folder / "metrics.json").write_text(json.dumps(saved), encoding="utf-8")
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 25}), str(folder))
    assert result.metrics["whosaid"]["trained_on"] == {"person": 35, "friends": 35}
    assert result.metrics["real"]["distinct"]["distinct1"] > 0
    html = (result.path / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 8 and "Knowledge probes" in html and "Who said it" in html
    assert "held-out replies" in html and "38 %" in html and "4 probes" in html  # the run: 37.5 % read as yours


def test_a_run_on_other_samples_is_flagged(workspace: Path) -> None:
    saved_eval(workspace, "small", "sft", 5, "好", ppl=9.0)
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 25}), "small", [], name="mixed")
    assert result.metrics["runs"][0]["comparable"] is False
    html = (result.path / "report.html").read_text(encoding="utf-8")
    assert "(other samples)" in html and 'role="alert"' in html
    assert "not in this run's samples" in html  # its replies cover only 5 of the 20 shown
    assert summary_table(result.metrics)[1][0][0] == "sft (other samples)"


def test_a_run_on_another_dataset_shows_no_replies(workspace: Path) -> None:
    saved_eval(workspace, "old", "sft", 10, "原来如此", ppl=9.0)
    test = workspace / "dataset" / "messages" / "test.jsonl"
    test.write_text(test.read_text(encoding="utf-8").replace("问题", "事"), encoding="utf-8")  # dataset rebuilt
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 10}), "old", [])
    (saved,) = result.metrics["runs"]
    assert saved["comparable"] is False and saved["generations"] == {}
    assert saved["metrics"]["perplexity"] == 9.0  # its numbers stay, flagged
    assert "原来如此" not in (result.path / "report.html").read_text(encoding="utf-8").split("Sample conversations")[1]


def test_same_label_twice_gets_the_folder_name(workspace: Path) -> None:
    saved_eval(workspace, "monday", "sft", 10, "好", ppl=9.0)
    saved_eval(workspace, "friday", "sft", 10, "嗯", ppl=8.0)
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 10}), "monday", ["friday"])
    assert [r["label"] for r in result.metrics["runs"]] == ["sft", "friday/sft"]


def test_summary_table_has_a_row_per_run(workspace: Path) -> None:
    saved_eval(workspace, "one", "sft", 10, "好<s>开冲", ppl=9.0)
    result = run.evaluate(Workspace(workspace), AvatarConfig(eval={"samples": 10}), "one", [])
    headers, rows = summary_table(result.metrics)
    assert headers[:3] == ["run", "perplexity", "BLEU-4"]
    assert len(rows) == 1 and rows[0][:2] == ["sft", "9.00"]
    assert rows[0][-1] == "1 / 42"  # the phone in test reply 1; 10 test replies + 8 probes x 4 samples


def test_subset_is_seeded_and_in_file_order(workspace: Path) -> None:
    samples = run.load_test(Workspace(workspace))
    picked = run.select(samples, 7)
    assert picked == run.select(samples, 7)
    assert [s.index for s in picked] == sorted(s.index for s in picked) and len(picked) == 7
    assert run.select(samples, 1000) == samples
    assert samples[0].context[-1]["role"] == "user" and samples[0].reply == REPLIES[0]


def test_run_specs_resolve(workspace: Path) -> None:
    assert run.resolve(Workspace(workspace), None) == run.RunSpec("base", "base", None)  # no adapter trained yet
    adapter = workspace / "adapters" / "sft"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    assert run.resolve(Workspace(workspace), None) == run.RunSpec("sft", "adapter", adapter)
    assert run.resolve(Workspace(workspace), "sft") == run.resolve(Workspace(workspace), str(adapter))
    assert run.resolve(Workspace(workspace), "base").kind == "base"
    with pytest.raises(UsageError, match="no adapter or eval run 'nope'") as err:
        run.resolve(Workspace(workspace), "nope")
    assert "train sft" in err.value.hint
    with pytest.raises(UsageError, match="neither an adapter"):
        run.resolve(Workspace(workspace), str(workspace / "dataset"))


def test_missing_empty_or_damaged_dataset(tmp_path: Path, workspace: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset") as err:
        run.load_test(Workspace(tmp_path / "fresh"))
    assert "wechat-avatar dataset" in err.value.hint
    test = workspace / "dataset" / "messages" / "test.jsonl"
    test.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match="test split is empty") as err:
        run.load_test(Workspace(workspace))
    assert "--test-ratio" in err.value.hint
    test.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"test.jsonl:1 is not a chat sample"):
        run.load_test(Workspace(workspace))


def test_cli_eval_reads_saved_runs_and_prints_the_table(workspace: Path) -> None:
    saved_eval(workspace, "old", "sft", 10, "好<s>开冲", ppl=9.0)
    result = run_cli("eval", "--workspace", workspace, "--adapter", "old", "--samples", "10", "--name", "again")
    assert result.returncode == 0, result.stderr
    assert "perplexity" in result.stdout and "9.00" in result.stdout
    assert f"report: {workspace / 'eval' / 'again' / 'report.html'}" in result.stdout.replace("\n", "")
    assert (workspace / "eval" / "again" / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        ((), "error: no dataset in", "hint: run `wechat-avatar dataset --workspace"),
        (("--adapter", "missing"), "error: no adapter or eval run 'missing'", "hint: train one"),
        (("--name", "../x"), "error: --name '../x' is not a folder name", "hint: use letters"),
    ],
)
def test_cli_bad_input_is_one_line(workspace: Path, tmp_path: Path, args: tuple[str, ...], message: str,
                                   hint: str) -> None:  # fmt: skip
    ws = tmp_path / "empty" if not args else workspace
    result = run_cli("eval", "--workspace", ws, *args)
    assert result.returncode != 0
    assert message in result.stderr and hint in result.stderr
    assert "Traceback" not in result.stderr
