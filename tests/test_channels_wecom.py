"""`connect wecom` end to end: the WeCom simulator -> a real connect process -> a real serve."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sim.harness import Connect, free_port, real_serve, running, turn_bubbles, turns
from sim.wecom import FakeWeCom

from wechat_avatar.config import load_config
from wechat_avatar.serve.engine import Engine
from wechat_avatar.workspace import Workspace

TOKEN, AES, CORP = "wecomtoken1", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "ww49f0ab532d5d035a"
MEMBER = "zhangsan"
PACE = {"pace_min_s": 0.2, "pace_per_char_s": 0.0, "pace_max_s": 0.2, "pace_jitter_s": 0.0}


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("wecom") / "workspace"))


@pytest.fixture(scope="module")
def serve(workspace: Path, tiny_config: Path) -> Iterator[str]:
    engine = Engine.open(Workspace(workspace), load_config(tiny_config), None)
    try:
        with real_serve(Workspace(workspace), engine) as url:
            yield url
    finally:
        engine.close()


def channels(serve: str, port: int, api: str, **wc: Any) -> dict[str, Any]:
    wecom = {"corp_id": CORP, "corp_secret": "corp-secret", "agent_id": 1000002, "token": TOKEN,
             "encoding_aes_key": AES, "api_base": api, **wc}  # fmt: skip
    return {"serve_url": serve, "port": port, "allow": [MEMBER], **PACE, "wecom": wecom}


def test_wecom_verifies_answers_once_per_msg_id_and_caches_its_token(workspace: Path, serve: str) -> None:
    port = free_port()
    sim = FakeWeCom(f"http://127.0.0.1:{port}/wecom", TOKEN, AES, CORP)
    with running(sim.api()) as api, Connect(workspace, "wecom", channels(serve, port, api)) as proc:
        proc.wait_for_port(port)
        assert sim.verify().status_code == 200
        assert sim.verify(forge=True).status_code == 403
        assert sim.push(MEMBER, "伪造", forge=True).status_code == 403
        friend = f"wecom:{MEMBER}"
        before = turns(serve, friend)
        for _ in range(3):  # WeCom's retries of one message
            ack = sim.push(MEMBER, "你好", msg_id="5550001")
            assert ack.status_code == 200 and ack.text == ""
        assert sim.push(MEMBER, "旧的", timestamp="1411525903").status_code == 403  # stale
        bad = httpx2.post(sim.callback, params={"msg_signature": "x", "timestamp": str(int(time.time())),
                                                "nonce": "1"}, content=b"<xml><Encrypt>", timeout=5)  # fmt: skip
        assert bad.status_code == 400 and "XML" in bad.json()["error"]["message"]
        deadline = time.monotonic() + 90
        while not sim.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        sim.revoke()  # the cached token goes stale: connect fetches a new one and sends again
        sim.push(MEMBER, "第二条")
        while turns(serve, friend) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = [b for turn in turn_bubbles(serve, friend)[before:] for b in turn]
        while len(sim.sent) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate send, were there one, would land by now
    assert turns(serve, friend) == before + 2  # the three tries of 5550001 were one model call
    assert [(u, t) for _, u, t in sim.sent] == [(MEMBER, b) for b in expected]
    assert sim.tokens_issued == 2  # cached for the first reply, renewed once after the revocation


def test_wecom_bad_corp_id_or_secret_is_one_line(workspace: Path, serve: str) -> None:
    sim = FakeWeCom("", TOKEN, AES, CORP)
    with running(sim.api()) as api:
        for wc, says in [({"corp_id": "nope"}, "CorpID"), ({"corp_secret": "wrong"}, "errcode 40001")]:
            result = Connect(workspace, "wecom", channels(serve, free_port(), api, **wc)).run()
            assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
