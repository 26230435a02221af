"""A small history, as a new user's first try looks: one chat, a PyWxDump export that names you only "我".

`run` must get through it: the account comes from the config (ingest.self_wxid), at least one
session is held out whenever there are two, and with only one, eval says what it cannot do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

from conftest import TINY_YAML, run_cli

from wechat_avatar.dataset.samples import bucket_of

FRIEND = "wxid_pal"
HEADER = ["id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime"]
LINES = ["在吗", "在", "晚上吃啥", "火锅<s>还是烤肉", "周末去爬山不", "去<s>几点", "八点", "好的捏", "带水", "收到"]
START = datetime(2024, 3, 1, 9, 0)


def one_chat(folder: Path, sessions: int, per_session: int = 20) -> Path:
    """A PyWxDump export of one private chat: `sessions` bursts two days apart, as PyWxDump writes them
    (UTF-8 with a BOM, your rows as sender 我)."""
    rows, n = [], 0
    for s in range(sessions):
        for i in range(per_session):
            n += 1
            mine = i % 2 == 1
            when = START + timedelta(days=2 * s, minutes=i)
            text = LINES[(s + i) % len(LINES)].replace("<s>", "")
            rows.append([n, 10_000 + n, "文本", int(mine), "我" if mine else FRIEND, FRIEND, text, "",
                         when.strftime("%Y-%m-%d %H:%M:%S")])  # fmt: skip
    path = folder / FRIEND / f"{FRIEND}_0_{n}.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return folder


def session_keys(sessions: int) -> list[str]:
    """How the dataset keys those sessions (chat:first message's UTC ms; Shanghai is UTC+8)."""
    return [f"{FRIEND}:{int((START + timedelta(days=2 * s) - timedelta(hours=8)).timestamp() * 1000)}"
            for s in range(sessions)]  # fmt: skip


def test_no_session_under_the_ratio_still_holds_one_out(tmp_path: Path) -> None:
    keys = session_keys(5)
    # the premise: with the default test_ratio 0.1 none of these five sessions would be held out
    assert min(bucket_of(k) for k in keys) >= 0.1, "pick other dates: this history already has a test session"
    export, ws = one_chat(tmp_path / "export", 5), tmp_path / "ws"
    assert run_cli("ingest", export, "--self", "wxid_me", "--workspace", ws).returncode == 0
    built = run_cli("dataset", "--workspace", ws)
    assert built.returncode == 0, built.stderr
    assert "held out for eval" in built.stdout
    manifest = json.loads((ws / "dataset" / "manifest.json").read_text(encoding="utf-8"))
    train, test = manifest["samples"]["train"], manifest["samples"]["test"]
    assert train > 0 and test > 0
    for fmt in ("messages", "firefly", "sharegpt"):
        lines = [(ws / "dataset" / fmt / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
                 for split in ("train", "test")]  # fmt: skip
        assert [len(lines[0]), len(lines[1])] == [train, test]
    meta = [json.loads(line) for line in (ws / "dataset" / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(meta) == train + test and len({m["session"] for m in meta}) == 5
    held = {m["session"] for m in meta if m["split"] == "test"}
    assert len(held) == 1 and sum(m["split"] == "test" for m in meta) == test  # one whole session
    assert not held & {m["session"] for m in meta if m["split"] == "train"}
    for name, digest in manifest["files"].items():  # the manifest's hashes are of the files as they are now
        assert hashlib.sha256((ws / "dataset" / name).read_bytes()).hexdigest() == digest, name


def test_run_on_one_session_trains_and_says_why_eval_cannot(tmp_path: Path) -> None:
    export, ws = one_chat(tmp_path / "export", 1, per_session=40), tmp_path / "ws"
    config = tmp_path / "avatar.yaml"
    config.write_text(TINY_YAML + "ingest: {self_wxid: wxid_me}\n", encoding="utf-8")
    result = run_cli("run", "--workspace", ws, "--config", config, "--ingest", export)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"dataset: \d+ train / 0 test samples", result.stderr)
    assert "eval: skipped: test split: empty (one conversation session" in result.stderr
    assert "sample: skipped: RLHF samples held-out contexts" in result.stderr  # and the RLHF stages after it
    assert "ppo: skipped:" in result.stderr and not (ws / "adapters" / "ppo").exists()
    assert (ws / "adapters" / "sft" / "adapter_config.json").is_file()
    with_self = run_cli("stats", "--workspace", ws, "--json")
    assert json.loads(with_self.stdout)["account"]["wxid"] == "wxid_me"


def test_without_self_the_export_is_refused_with_the_config_field_named(tmp_path: Path) -> None:
    export = one_chat(tmp_path / "export", 1)
    result = run_cli("run", "--workspace", tmp_path / "ws", "--ingest", export)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "names you only as '我'" in result.stderr
