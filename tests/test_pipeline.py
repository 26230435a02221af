"""`wechat-avatar run`: every stage in order, then only what a change makes stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import run_cli

# the RLHF stages at their smallest: 2 candidates for a few contexts, 2 reward steps, 1 PPO step
RLHF_YAML = """\
rlhf: {k: 2, contexts: 2, max_new_tokens: 4, reward: {max_steps: 2, max_length: 96},
       ppo: {max_steps: 1, batch_size: 2, num_ppo_epochs: 1, response_length: 4, max_prompt_length: 64}}
"""


def _stages(stderr: str) -> dict[str, str]:
    names = ("ingest", "dataset", "pretrain", "sft", "eval", "sample", "judge", "reward", "ppo")
    return {line.split(":")[0]: line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith(names)}


def test_run_all_then_skip_then_only_what_changed(export, dataset_workspace: Path, tiny_config: Path,
                                                   tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    workspace = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    config = tmp_path / "avatar.yaml"
    base = tiny_config.read_text(encoding="utf-8") + f"ingest_paths: [{export.db_path.parent}]\n"
    base += "eval: {samples: 3, max_new_tokens: 4}\n" + RLHF_YAML
    config.write_text(base, encoding="utf-8")

    first = run_cli("run", "--workspace", workspace, "--config", config, "--no-rlhf")
    assert first.returncode == 0, first.stderr
    ran = _stages(first.stderr)
    assert list(ran) == ["ingest", "dataset", "pretrain", "sft", "eval"]
    assert "fresh, skipped" not in ran.values()  # each stage's last line is its summary
    assert ran["ingest"].startswith("added 0 messages")  # the export was already in chat.db
    assert (workspace / "eval" / "run" / "report.html").is_file()
    assert "report: " in first.stdout

    # with RLHF (the default): only its stages run, sample -> offline judge -> reward -> ppo
    rlhf = run_cli("run", "--workspace", workspace, "--config", config)
    assert rlhf.returncode == 0, rlhf.stderr
    ran = _stages(rlhf.stderr)
    assert list(ran) == ["ingest", "dataset", "pretrain", "sft", "eval", "sample", "judge", "reward", "ppo"]
    assert [n for n, s in ran.items() if s != "fresh, skipped"] == ["sample", "judge", "reward", "ppo"]
    assert ran["judge"].startswith("offline judge scored")
    ranked = [json.loads(line) for line in (workspace / "rlhf" / "ranked.jsonl").read_text("utf-8").splitlines()]
    assert ranked and all(r["judge"] == "offline" and len(r["scores"]) == 2 for r in ranked)
    ppo = json.loads((workspace / "adapters" / "ppo" / "run.json").read_text(encoding="utf-8"))
    assert len(ppo["log"]) == 1 and (workspace / "adapters" / "reward" / "score.safetensors").is_file()

    unpacked_rows = json.loads((workspace / "adapters" / "sft" / "run.json").read_text(encoding="utf-8"))["train_rows"]

    second = run_cli("run", "--workspace", workspace, "--config", config)
    assert second.returncode == 0, second.stderr
    assert set(_stages(second.stderr).values()) == {"fresh, skipped"}

    # packing (off by default, on in the GPU presets) is an sft setting too; this run covers it end to end
    changed = base.replace("learning_rate: 2.0e-3", "learning_rate: 1.0e-3, packing: true")
    config.write_text(changed, encoding="utf-8")
    third = run_cli("run", "--workspace", workspace, "--config", config, "--no-rlhf")
    assert third.returncode == 0, third.stderr
    stages = _stages(third.stderr)
    assert list(stages) == ["ingest", "dataset", "pretrain", "sft", "eval"]
    assert [n for n, s in stages.items() if s == "fresh, skipped"] == ["ingest", "dataset", "pretrain"]
    run = json.loads((workspace / "adapters" / "sft" / "run.json").read_text(encoding="utf-8"))
    assert run["config"]["sft"]["learning_rate"] == 1.0e-3 and run["config"]["sft"]["packing"] is True
    assert run["train_rows"] < unpacked_rows  # several samples to a row


def test_run_without_inputs_says_what_to_add(tmp_path: Path) -> None:
    result = run_cli("run", "--workspace", tmp_path / "ws")
    assert result.returncode == 2
    assert "nothing to ingest: avatar.yaml has no ingest_paths" in result.stderr and "Traceback" not in result.stderr


def test_make_demo_keeps_everything_in_the_folder_it_is_given(tmp_path: Path) -> None:
    """`make demo DEMO=folder`: the export, the workspace and the config all agree on the one folder."""
    root = Path(__file__).resolve().parent.parent
    folder = tmp_path / "elsewhere"
    plan = subprocess.run(["make", "-n", "demo", f"DEMO={folder}"], cwd=root, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    cli = [line.split() for line in plan.stdout.splitlines() if "wechat-avatar " in line and not line.startswith("#")]
    synth = next(words for words in cli if words[1] == "synth")
    run = next(words for words in cli if words[1] == "run")
    assert synth[2] == f"{folder}/export"
    assert run[run.index("--ingest") + 1] == synth[2] and run[run.index("--workspace") + 1] == f"{folder}/workspace"
    config = yaml.safe_load((root / run[run.index("--config") + 1]).read_text(encoding="utf-8"))
    assert "ingest_paths" not in config  # the folder is named by the Makefile alone
