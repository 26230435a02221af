"""Shared fixtures: a small synthetic export, hand-built EnMicroMsg databases, the real CLI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from wechat_avatar import android_crypto
from wechat_avatar.workspace import Workspace

SELF = "wxid_me"
IMEI = "1234567890ABCDEF"
UIN = "1727374951"


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A small deterministic synthetic export, made once per test run."""
    from wechat_avatar.synth import synth_android

    return synth_android(tmp_path_factory.mktemp("synth") / "export", messages=1500, seed=3)


@pytest.fixture(scope="session")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same history as `export`, written as every PC database and export tool (format -> SynthExport)."""
    from wechat_avatar.synth.formats import FORMATS, synth_export

    base = tmp_path_factory.mktemp("formats")
    return {fmt: synth_export(base / fmt, fmt, messages=1500, seed=3) for fmt in FORMATS if fmt != "android"}


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `wechat-avatar` entry point in a child process, as a user runs it."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("WECHAT_AVATAR_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "wechat_avatar", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


MESSAGE_SQL = """CREATE TABLE message (msgId INTEGER PRIMARY KEY, msgSvrId INTEGER, type INT, status INT,
isSend INT, isShowTimer INTEGER, createTime INTEGER, talker TEXT, content TEXT, imgPath TEXT, reserved TEXT,
lvbuffer BLOB, transContent TEXT, transBrandWording TEXT, talkerId INTEGER, bizClientMsgId TEXT,
bizChatId INTEGER DEFAULT -1, bizChatUserId TEXT, msgSeq INTEGER, flag INT)"""
RCONTACT_SQL = """CREATE TABLE rcontact (username TEXT PRIMARY KEY, alias TEXT, conRemark TEXT,
domainList TEXT, nickname TEXT, pyInitial TEXT, quanPin TEXT, showHead INTEGER, type INTEGER,
weiboFlag INTEGER, weiboNickname TEXT, conRemarkPYFull TEXT, conRemarkPYShort TEXT, lvbuff BLOB,
verifyFlag INTEGER, encryptUsername TEXT, chatroomFlag INTEGER, deleteFlag INTEGER, contactLabelIds TEXT)"""
CHATROOM_SQL = """CREATE TABLE chatroom (chatroomname TEXT PRIMARY KEY, addtime INTEGER, memberlist TEXT,
displayname TEXT, chatroomnick TEXT, roomflag INTEGER, roomowner TEXT, roomdata BLOB)"""

# (username, alias, conRemark, nickname, type, verifyFlag)
CONTACTS = [
    (SELF, "me_alias", "", "乌冬面", 1, 0),
    ("wxid_hu", "", "胡三行", "Hu", 3, 0),
    ("wxid_zhou", "", "", "驾校周师傅", 3, 0),
    ("123@chatroom", "", "", "开黑群", 2, 0),
    ("gh_news", "", "", "新闻早知道", 3, 8),
]


def build_android_db(
    path: Path,
    messages: Sequence[tuple[Any, ...]],
    key: str | None = None,
    chatrooms: Sequence[tuple[str, str, str, bytes]] = (),
) -> Path:
    """A minimal EnMicroMsg.db with the real column names.

    messages: (msgId, msgSvrId, type, isSend, createTime, talker, content) tuples.
    chatrooms: (chatroomname, memberlist, displayname, roomdata) tuples.
    """
    conn = android_crypto.connect(path, key) if key else sqlite3.connect(path)
    for sql in (
        MESSAGE_SQL,
        RCONTACT_SQL,
        CHATROOM_SQL,
        "CREATE TABLE userinfo (id INTEGER PRIMARY KEY, type INT, value TEXT)",
    ):
        conn.execute(sql)
    conn.executemany("INSERT INTO userinfo VALUES (?, ?, ?)", [(2, 3, SELF), (4, 3, "乌冬面")])
    conn.executemany(
        "INSERT INTO rcontact (username, alias, conRemark, nickname, type, verifyFlag) VALUES (?, ?, ?, ?, ?, ?)",
        CONTACTS,
    )
    conn.executemany(
        "INSERT INTO message (msgId, msgSvrId, type, isSend, createTime, talker, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
        messages,
    )
    conn.executemany(
        "INSERT INTO chatroom (chatroomname, memberlist, displayname, roomdata) VALUES (?, ?, ?, ?)", chatrooms
    )
    conn.commit()
    conn.close()
    return path


TINY_YAML = """\
# the smallest settings that still learn: a 2-layer, 64-wide Qwen2 and a few steps
model:
  tiny: {hidden_size: 64, layers: 2, heads: 4, kv_heads: 2, pretrain_steps: 30, pretrain_batch_size: 8, seq_len: 128}
sft: {max_steps: 6, batch_size: 4, grad_accum: 1, max_length: 256, save_steps: 3, logging_steps: 1,
      learning_rate: 2.0e-3}
"""


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """avatar.yaml for the tiny-cpu preset at test size."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(TINY_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def dataset_workspace(export: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`export` ingested and turned into a dataset (read-only: copy it before writing)."""
    workspace = tmp_path_factory.mktemp("dataset-ws") / "workspace"
    for args in (("ingest", export.db_path.parent), ("dataset",)):
        result = run_cli(*args, "--workspace", workspace)
        assert result.returncode == 0, result.stderr
    return workspace


@pytest.fixture(scope="session")
def tiny_workspace(dataset_workspace: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chat.db, the dataset, the tiny model and a 6-step SFT adapter in adapters/sft (copy before writing)."""
    from wechat_avatar.config import load_config
    from wechat_avatar.train.sft import run_sft

    workspace = Path(shutil.copytree(dataset_workspace, tmp_path_factory.mktemp("tiny-ws") / "workspace"))
    run_sft(Workspace(workspace), load_config(tiny_config), log=lambda line: None)
    return workspace
