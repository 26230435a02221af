"""`connect official-account` end to end: the simulator's pushes -> a real connect process -> a real serve.

Plain, compatibility and safe mode; WeChat's 3 tries of one MsgId answered by one model call; the
customer-service API for the bubbles after the first and for replies that miss the window, paced;
forged, stale and malformed pushes refused before any model call; allowlist, draft mode, kill switch.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from sim.harness import Connect, avatar_bubbles, free_port, journal, real_serve, running, slow, turn_bubbles, turns
from sim.official_account import FakeMP

from wechat_avatar.config import load_config
from wechat_avatar.serve.engine import Engine
from wechat_avatar.workspace import Workspace

TOKEN, APP_ID = "simtoken123", "wx1234567890abcdef"
AES = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
FRIEND, STRANGER = "oFriend001", "oStranger01"
PACE = {"pace_min_s": 0.3, "pace_per_char_s": 0.0, "pace_max_s": 0.3, "pace_jitter_s": 0.05}


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("oa") / "workspace"))


@pytest.fixture(scope="module")
def serve(workspace: Path, tiny_config: Path) -> Iterator[str]:
    engine = Engine.open(Workspace(workspace), load_config(tiny_config), None)
    try:
        with real_serve(Workspace(workspace), engine) as url:
            yield url
    finally:
        engine.close()


def channels(serve: str, port: int, api: str = "", **oa: Any) -> dict[str, Any]:
    oa = {"token": TOKEN, "app_id": APP_ID, "api_base": api or "http://127.0.0.1:9", **oa}
    return {"serve_url": serve, "port": port, "allow": [FRIEND], **PACE, "official_account": oa}


@pytest.fixture(scope="module")
def plain(workspace: Path, serve: str) -> Iterator[FakeMP]:
    """One connect process in compatibility-capable mode (key set), no customer service."""
    port = free_port()
    with Connect(workspace, "official-account", channels(serve, port, encoding_aes_key=AES)) as proc:
        proc.wait_for_port(port)
        yield FakeMP(f"http://127.0.0.1:{port}/wechat", TOKEN, APP_ID, AES)


def friend(openid: str) -> str:
    return f"official-account:{openid}"


def test_url_verification_echoes_and_a_forged_one_is_403(plain: FakeMP) -> None:
    assert plain.verify().status_code == 200
    assert plain.verify(forge=True).status_code == 403


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_a_follower_gets_the_avatar_s_bubbles_joined_in_one_passive_reply(plain: FakeMP, serve: str,
                                                                         mode: str) -> None:  # fmt: skip
    before = turns(serve, friend(FRIEND))
    push = plain.push(FRIEND, f"在吗 {mode}", mode=mode)
    assert push.tries == ["200"] and push.status == 200
    assert turns(serve, friend(FRIEND)) == before + 1
    bubbles = avatar_bubbles(serve, friend(FRIEND))
    assert push.reply == ("\n".join(bubbles) if bubbles else None)


def test_forged_stale_and_malformed_pushes_are_refused_before_any_model_call(plain: FakeMP, serve: str,
                                                                             workspace: Path) -> None:  # fmt: skip
    before = turns(serve, friend(FRIEND))
    assert plain.push(FRIEND, "forged", forge="signature").status == 403
    assert plain.push(FRIEND, "forged inner", mode="safe", forge="msg_signature").status == 403
    assert plain.push(FRIEND, "old", timestamp="1411525903").status == 403  # 2014: stale
    bad = plain.push(FRIEND, raw=b"<xml><FromUserName>oFriend001</FromUserName><MsgType>text")
    assert bad.status == 400 and "XML" in bad.body
    assert plain.push(FRIEND, raw=b'{"json": true}').status == 400
    assert (
        plain.push(FRIEND, mode="safe", raw=b"<xml><Encrypt><![CDATA[bm90IGEgcmVhbCBvbmU=]]></Encrypt></xml>").status
        == 400
    )
    assert turns(serve, friend(FRIEND)) == before  # no model call
    assert [line for line in journal(workspace) if line["text"] in ("forged", "forged inner", "old")] == []


def test_a_stranger_is_logged_but_not_answered(plain: FakeMP, serve: str, workspace: Path) -> None:
    push = plain.push(STRANGER, "你是谁")
    assert push.status == 200 and push.reply is None and turns(serve, friend(STRANGER)) == 0
    assert {"kind": "in", "user": STRANGER, "text": "你是谁", "verdict": "blocked"}.items() <= journal(workspace)[
        -1
    ].items()


def test_non_text_gets_the_configured_line_without_a_model_call(plain: FakeMP, serve: str) -> None:
    before = turns(serve, friend(FRIEND))
    push = plain.push(FRIEND, None, msg_type="image")
    assert push.reply == "我现在只看得懂文字哦" and turns(serve, friend(FRIEND)) == before


def test_a_replayed_msg_id_is_one_model_call(plain: FakeMP, serve: str) -> None:
    before = turns(serve, friend(FRIEND))
    first = plain.push(FRIEND, "同一条", msg_id="777000111")
    again = plain.push(FRIEND, "同一条", msg_id="777000111")
    assert first.status == again.status == 200 and again.reply == first.reply
    assert turns(serve, friend(FRIEND)) == before + 1


def test_retries_of_a_slow_reply_are_one_model_call_answered_in_time(workspace: Path, serve: str) -> None:
    """The model takes longer than WeChat waits: the first try is held, a retry gets the answer."""
    port = free_port()
    with slow(serve, 1.2) as late, Connect(workspace, "official-account",
                                           channels(late, port, reply_window_s=0.9)) as proc:  # fmt: skip
        proc.wait_for_port(port)
        sim = FakeMP(f"http://127.0.0.1:{port}/wechat", TOKEN, APP_ID, timeout_s=1.0)
        push = sim.push(FRIEND, "慢慢说")
    assert push.tries[0] == "timeout" and push.tries[-1] == "200" and len(push.tries) >= 2
    assert turns(serve, friend(FRIEND)) >= 1
    assert push.reply == ("\n".join(avatar_bubbles(serve, friend(FRIEND))) or None)
    assert [line["kind"] for line in journal(workspace) if line["text"] == "慢慢说"] == ["in"]  # asked once


def test_customer_service_sends_what_misses_the_window_and_paces_replies(workspace: Path, serve: str) -> None:
    """With the customer-service API a late reply follows through message/custom/send; replies to a burst
    of messages keep their order and the configured spacing in the simulator's clock."""
    port = free_port()
    sim = FakeMP(f"http://127.0.0.1:{port}/wechat", TOKEN, APP_ID, AES, timeout_s=5.0)
    with running(sim.api()) as api, slow(serve, 0.6) as late, Connect(
            workspace, "official-account", channels(late, port, api, encoding_aes_key=AES, customer_service=True,
                                                    app_secret=sim.secret, reply_window_s=0.2)) as proc:  # fmt: skip
        proc.wait_for_port(port)
        before = len(turn_bubbles(serve, friend(FRIEND)))
        pushes = [sim.push(FRIEND, f"第{i}条", mode="safe") for i in range(3)]
        assert all(p.tries == ["200"] and p.reply is None for p in pushes)  # `success`: no retry wanted
        deadline = time.monotonic() + 60
        while len(turn_bubbles(serve, friend(FRIEND))) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = [b for turn in turn_bubbles(serve, friend(FRIEND))[before:] for b in turn]
        while len(sim.sent) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [(u, text) for _, u, text in sim.sent] == [(FRIEND, b) for b in expected]  # in order, each once
    assert sim.tokens_issued == 1  # the access token is cached


def test_a_bad_token_app_id_key_or_secret_is_one_line_and_exit_2(workspace: Path, serve: str) -> None:
    port = free_port()
    sim = FakeMP("", TOKEN, APP_ID)
    with running(sim.api()) as api:
        for oa, says in [({"token": "a"}, "token must be 3-32"), ({"app_id": "nope", "encoding_aes_key": AES}, "AppID"),
                         ({"encoding_aes_key": "short"}, "EncodingAESKey must be 43"),
                         ({"customer_service": True, "app_secret": "wrong"}, "errcode 40125")]:  # fmt: skip
            result = Connect(workspace, "official-account", channels(serve, port, api, **oa)).run()
            assert result.returncode == 2 and says in result.stderr, result.stderr
            assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_draft_mode_and_the_kill_switch(workspace: Path, serve: str) -> None:
    port = free_port()
    with Connect(workspace, "official-account", channels(serve, port), "--draft") as proc:
        proc.wait_for_port(port)
        sim = FakeMP(f"http://127.0.0.1:{port}/wechat", TOKEN, APP_ID)
        before = turns(serve, friend(FRIEND))
        draft = sim.push(FRIEND, "草稿一下")
        assert draft.reply is None and turns(serve, friend(FRIEND)) == before + 1
        assert journal(workspace)[-1]["kind"] == "draft"
        assert run_cli("connect", "--stop", "-w", workspace).returncode == 0
        stopped = sim.push(FRIEND, "停了吗")
        assert stopped.reply is None and turns(serve, friend(FRIEND)) == before + 1
        assert journal(workspace)[-1]["verdict"] == "stopped"
        assert run_cli("connect", "--resume", "-w", workspace).returncode == 0
        sim.push(FRIEND, "又开了")
        assert turns(serve, friend(FRIEND)) == before + 2
    assert "draft-only" in proc.stderr and "answering 1 allowed user(s): oFriend001" in proc.stderr
