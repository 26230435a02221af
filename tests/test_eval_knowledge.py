"""Knowledge probes in eval: recall of the persona's facts and the share of generic replies, with and without memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import run_cli

from wechat_avatar.errors import UsageError
from wechat_avatar.eval import knowledge


def test_scores_count_stated_facts_and_generic_replies() -> None:
    probes = [knowledge.Probe("pet", "胡三行", "你的猫叫啥", 0, ("年糕",)),
              knowledge.Probe("pet", "阿杰", "猫呢", 0, ("年糕",)),
              knowledge.Probe("food", "阿杰", "爱吃啥", 0, ("酸菜鱼",)),
              knowledge.Probe("food", "阿杰", "吃啥", 0, ("酸菜鱼",))]  # fmt: skip
    replies = ["叫年糕<s>胖得很", "好的捏<s>[表情包]", "[捂脸]", "火锅吧"]
    got = knowledge.score(probes, replies)
    assert (got["recall"], got["generic"]) == (25.0, 50.0)
    assert got["by_fact"] == {"pet": 50.0, "food": 0.0}
    assert [r["stated"] for r in got["replies"]] == [True, False, False, False]
    assert knowledge.is_generic("我先睡会") and knowledge.is_generic("") and not knowledge.is_generic("绍兴的")


def test_a_file_without_probes_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "synth.json").write_text('{"messages": 3}', encoding="utf-8")
    try:
        knowledge.load_probes(tmp_path / "synth.json")
    except UsageError as err:
        assert "no probe file" in str(err) and err.hint
    else:
        raise AssertionError("no error")


def test_eval_asks_the_probes_with_and_without_memory(tiny_workspace: Path, export: Any, tmp_path: Path) -> None:
    ws = Path(shutil.copytree(tiny_workspace, tmp_path / "ws"))
    plain = run_cli("eval", "--workspace", ws, "--samples", "2", "--max-new-tokens", "4", "--name", "plain",
                    "--probes", export.manifest_path)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    k = json.loads((ws / "eval" / "plain" / "metrics.json").read_text(encoding="utf-8"))["runs"][0]["knowledge"]
    n = len(json.loads(export.manifest_path.read_text(encoding="utf-8"))["probes"])
    assert k["with_memory"] is None and k["without_memory"]["probes"] == n  # no index yet: only without
    assert run_cli("memory", "build", "--workspace", ws).returncode == 0
    both = run_cli("eval", "--workspace", ws, "--samples", "2", "--max-new-tokens", "4", "--name", "both",
                   "--probes", export.manifest_path)  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert "knowledge with memory: recall" in both.stdout and "knowledge without memory: recall" in both.stdout
    k = json.loads((ws / "eval" / "both" / "metrics.json").read_text(encoding="utf-8"))["runs"][0]["knowledge"]
    for how in ("without_memory", "with_memory"):
        assert k[how]["probes"] == n and 0 <= k[how]["recall"] <= 100 and len(k[how]["replies"]) == n
    # the same seeds, another prompt: the memory block changed what the model was asked
    assert [r["reply"] for r in k["with_memory"]["replies"]] != [r["reply"] for r in k["without_memory"]["replies"]]


def test_eval_with_memory_on_gives_samples_their_memories(tiny_workspace: Path, tmp_path: Path) -> None:
    ws = Path(shutil.copytree(tiny_workspace, tmp_path / "ws"))
    config = tmp_path / "avatar.yaml"
    config.write_text("memory:\n  enabled: true\n", encoding="utf-8")
    off = run_cli("eval", "--workspace", ws, "--samples", "6", "--max-new-tokens", "2", "--name", "off")
    assert off.returncode == 0, off.stderr
    missing = run_cli("eval", "--workspace", ws, "--config", config, "--samples", "6", "--max-new-tokens", "2")
    assert missing.returncode != 0 and "memory build" in missing.stderr and "Traceback" not in missing.stderr
    assert run_cli("memory", "build", "--workspace", ws).returncode == 0
    on = run_cli("eval", "--workspace", ws, "--config", config, "--samples", "6", "--max-new-tokens", "2",
                 "--name", "on")  # fmt: skip
    assert on.returncode == 0, on.stderr
    read = lambda name: json.loads((ws / "eval" / name / "metrics.json").read_text(encoding="utf-8"))  # noqa: E731
    got, plain = read("on"), read("off")
    assert plain["memory"] is None and got["memory"]["samples"] == 6 and got["memory"]["remembered"] > 0
    assert "samples recalled something" in on.stdout and "who said it (read as yours)" in on.stdout
    assert got["whosaid"]["real"] > got["whosaid"]["friends"] and 0 <= got["runs"][0]["whosaid"] <= 100
    # memories in the prompt change what the real replies cost the model
    assert got["runs"][0]["metrics"]["perplexity"] != plain["runs"][0]["metrics"]["perplexity"]
