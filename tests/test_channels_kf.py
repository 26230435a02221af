"""`connect kf` end to end: the 微信客服 simulator -> a real connect process -> a real serve.

The callback only says "there is news"; messages come from sync_msg, paged, from a cursor that
survives a restart (nothing answered twice); a message older than 48 h is held, not sent; forged
callbacks are refused; every send stays within the platform's limits (the simulator refuses others).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sim.harness import Connect, free_port, journal, real_serve, running, turn_bubbles, turns
from sim.kf import KFID, FakeKf

from wechat_avatar.config import load_config
from wechat_avatar.serve.engine import Engine
from wechat_avatar.workspace import Workspace

TOKEN, AES, CORP = "kftoken123", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "ww49f0ab532d5d035a"
PACE = {"pace_min_s": 0.1, "pace_per_char_s": 0.0, "pace_max_s": 0.1, "pace_jitter_s": 0.0}
GUEST, OLD = "wmGuest0001", "wmOldGuest1"


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("kf") / "workspace"))


@pytest.fixture(scope="module")
def serve(workspace: Path, tiny_config: Path) -> Iterator[str]:
    engine = Engine.open(Workspace(workspace), load_config(tiny_config), None)
    try:
        with real_serve(Workspace(workspace), engine) as url:
            yield url
    finally:
        engine.close()


def channels(serve: str, port: int, api: str, **kf: Any) -> dict[str, Any]:
    cfg = {"corp_id": CORP, "secret": "kf-secret", "token": TOKEN, "encoding_aes_key": AES, "api_base": api, **kf}
    return {"serve_url": serve, "port": port, "allow": ["*"], **PACE, "kf": cfg}


def until(check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_kf_pulls_from_a_cursor_that_survives_a_restart(workspace: Path, serve: str) -> None:
    port = free_port()
    sim = FakeKf(f"http://127.0.0.1:{port}/kf", TOKEN, AES, CORP)
    friend = f"kf:{GUEST}"
    with running(sim.api()) as api:
        with Connect(workspace, "kf", channels(serve, port, api)) as proc:
            proc.wait_for_port(port)
            assert sim.notify(forge=True).status_code == 403
            sim.write(OLD, "两天前的消息", ago_s=49 * 3600)
            for text in ("你好", "在吗", "人呢"):
                sim.write(GUEST, text)
            assert sim.notify().status_code == 200
            until(lambda: turns(serve, friend) == 3)
            expected = [b for turn in turn_bubbles(serve, friend) for b in turn]
            until(lambda: len(sim.sent) >= len(expected))
        state = json.loads(Workspace(workspace).channel_state("kf").read_text())
        assert state == {"cursors": {KFID: "4"}} and sim.syncs == ["", "2"]  # paged: has_more followed
        with Connect(workspace, "kf", channels(serve, port, api)) as proc:  # a restart
            proc.wait_for_port(port)
            sim.write(GUEST, "我又来了")
            assert sim.notify().status_code == 200
            until(lambda: turns(serve, friend) == 4)
            expected = [b for turn in turn_bubbles(serve, friend) for b in turn]
            until(lambda: len(sim.sent) >= len(expected))
    assert sim.syncs[-1] == "4"  # the restart went on from the saved cursor
    assert [(u, t) for _, u, t in sim.sent] == [(GUEST, b) for b in expected]  # each once, in order
    assert sim.refused == 0 and turns(serve, f"kf:{OLD}") == 0
    held = [line for line in journal(workspace) if line["kind"] == "held"]
    assert [(h["user"], h["reason"]) for h in held] == [(OLD, "the 48-hour reply window is closed")]


def test_kf_holds_back_strangers_and_refuses_bad_credentials(workspace: Path, serve: str, tmp_path: Path) -> None:
    """A new platform (its cursor starts again) on a workspace without kf.json."""
    workspace = Path(shutil.copytree(workspace, tmp_path / "ws", ignore=shutil.ignore_patterns("channels")))
    port = free_port()
    sim = FakeKf(f"http://127.0.0.1:{port}/kf", TOKEN, AES, CORP)
    with running(sim.api()) as api:
        with Connect(workspace, "kf", {**channels(serve, port, api), "allow": [GUEST]}) as proc:
            proc.wait_for_port(port)
            sim.write("wmStranger1", "你好")
            sim.notify()
            until(lambda: any(line["user"] == "wmStranger1" for line in journal(workspace)))
        assert journal(workspace)[-1]["verdict"] == "blocked" and turns(serve, "kf:wmStranger1") == 0
        for kf, says in [({"secret": "wrong"}, "errcode 40001"), ({"corp_id": "x"}, "CorpID"),
                         ({"encoding_aes_key": "short"}, "EncodingAESKey")]:  # fmt: skip
            result = Connect(workspace, "kf", channels(serve, free_port(), api, **kf)).run()
            assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
