"""`wechat-avatar eval` end to end on the tiny model: real loading, perplexity, generation, report.

`tiny_workspace` (conftest) holds chat.db, the dataset, the tiny-cpu model and a few-step SFT
adapter in adapters/sft. Each test works on its own copy, so eval folders never leak between tests.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from wechat_avatar.eval import privacy


@pytest.fixture
def workspace(tiny_workspace: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_workspace, tmp_path / "ws"))


def test_eval_sft_against_base_then_reread(workspace: Path) -> None:
    result = run_cli("eval", "--workspace", workspace, "--compare", "base", "--samples", "4",
                     "--max-new-tokens", "6", "--name", "first")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = workspace / "eval" / "first"
    assert "perplexity" in result.stdout and f"report: {out / 'report.html'}" in result.stdout.replace("\n", "")
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    sft, base = saved["runs"]
    assert (sft["label"], sft["kind"], base["label"], base["kind"]) == ("sft", "adapter", "base", "base")
    assert sft["base"] == base["base"] == "builtin:tiny-qwen2"
    assert sft["adapter"] == str(workspace / "adapters" / "sft") and base["adapter"] is None
    assert saved["dataset"]["samples"] == 4 and saved["dataset"]["test_sha256"]
    for run in (sft, base):
        ppl = run["metrics"]["perplexity"]
        assert ppl is not None and math.isfinite(ppl) and ppl > 1
        assert run["metrics"]["reply_tokens"] > 0
        assert sorted(map(int, run["generations"])) == saved["dataset"]["indices"]
        assert run["privacy"]["probe_replies"] == len(run["probes"]) * privacy.PROBE_REPEATS
        assert run["style"]["replies"] == 4
    # the adapter learnt the person: the real held-out replies are likelier with it than without
    assert sft["metrics"]["perplexity"] < base["metrics"]["perplexity"]
    html = (out / "report.html").read_text(encoding="utf-8")
    # scores, perplexity, lengths, bubbles, civility, distinct, who-said-it (no knowledge probes asked)
    assert html.count("<svg") == 7 and html.count('class="sample"') == 4
    assert "Who said it" in html
    assert str(workspace / "adapters" / "sft") in html and "<td>base</td>" in html

    # an earlier eval folder is read back, not rerun: same numbers, no model needed
    again = run_cli("eval", "--workspace", workspace, "--adapter", "first", "--samples", "4", "--name", "second")
    assert again.returncode == 0, again.stderr
    reread = json.loads((workspace / "eval" / "second" / "metrics.json").read_text(encoding="utf-8"))
    assert [r["metrics"] for r in reread["runs"]] == [sft["metrics"], base["metrics"]]
    assert all(r["comparable"] for r in reread["runs"])


def test_adapter_of_another_base_is_refused(workspace: Path) -> None:
    adapter = workspace / "other-adapter"
    shutil.copytree(workspace / "adapters" / "sft", adapter)
    record_path = adapter / "run.json"
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    record_path.write_text(json.dumps({**record, "base": "builtin:smollm2-135m"}), encoding="utf-8")
    result = run_cli("eval", "--workspace", workspace, "--adapter", adapter, "--samples", "2")
    assert result.returncode != 0
    assert "error: adapter" in result.stderr and "builtin:smollm2-135m" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
    assert not (workspace / "eval").exists()  # refused before anything was written


def test_folder_that_is_no_adapter_is_refused(workspace: Path) -> None:
    result = run_cli("eval", "--workspace", workspace, "--adapter", workspace / "dataset")
    assert result.returncode != 0
    assert "is neither an adapter" in result.stderr and "Traceback" not in result.stderr
