"""`connect clawbot` end to end: the iLink simulator -> a real connect process -> a real serve.

QR login and the credentials file (mode 600), the owner's chat and drafts (`@name:`), sends paced at
least min_gap_s apart by the simulator's clock and in order, ret=-2 backed off and resent, message_id
de-dup, strangers held back, the kill switch, and a new login after the session expires.
"""

from __future__ import annotations

import itertools
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from sim.clawbot import OWNER, FakeILink
from sim.harness import Connect, journal, real_serve, running, turn_bubbles, turns

from wechat_avatar.config import load_config
from wechat_avatar.serve.engine import Engine
from wechat_avatar.workspace import Workspace

GAP = 0.3
ME = f"clawbot:{OWNER}"


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("clawbot") / "workspace"))


@pytest.fixture(scope="module")
def serve(workspace: Path, tiny_config: Path) -> Iterator[str]:
    engine = Engine.open(Workspace(workspace), load_config(tiny_config), None)
    try:
        with real_serve(Workspace(workspace), engine) as url:
            yield url
    finally:
        engine.close()


def channels(serve: str, base: str, **bot: Any) -> dict[str, Any]:
    pace = {"pace_min_s": 0.0, "pace_per_char_s": 0.0, "pace_max_s": 0.0, "pace_jitter_s": 0.0}
    return {"serve_url": serve, **pace, "clawbot": {"base_url": base, "min_gap_s": GAP, "long_poll_s": 5, **bot}}


def until(check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def bot(workspace: Path, serve: str) -> Iterator[FakeILink]:
    sim = FakeILink(min_gap_s=GAP * 0.9)
    with running(sim.app()) as base, Connect(workspace, "clawbot", channels(serve, base)) as proc:
        until(lambda: sim.polls > 0)
        yield sim
    assert "https://liteapp.weixin.qq.com/q/qr1" in proc.stderr and "answering its owner" in proc.stderr


def replies_to(sim: FakeILink, token: str) -> list[str]:
    return [text for _, _, text, ctx in sim.sent if ctx == token]


def expected_since(serve: str, friend: str, before: int) -> list[str]:
    return [b for turn in turn_bubbles(serve, friend)[before:] for b in turn]


def test_login_keeps_the_credentials_mode_600(bot: FakeILink, workspace: Path) -> None:
    state = Workspace(workspace).channel_state("clawbot")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert bot.token and bot.token in state.read_text() and bot.logins == 1


def test_the_owner_chats_with_the_avatar_and_sends_are_paced_in_order(bot: FakeILink, serve: str) -> None:
    before, start = turns(serve, ME), len(bot.sent)
    tokens = [bot.inject(f"第{i}句") for i in range(3)]
    until(lambda: turns(serve, ME) == before + 3)
    expected = expected_since(serve, ME, before)
    until(lambda: len(bot.sent) - start >= len(expected))
    sent = bot.sent[start:]
    assert [text for _, _, text, _ in sent] == expected and {to for _, to, _, _ in sent} == {OWNER}
    order = [ctx for _, _, _, ctx in sent]
    assert order == sorted(order, key=tokens.index)  # replies come in the order the messages came
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(gap >= GAP * 0.95 for gap in gaps), gaps


def test_a_draft_for_a_friend_uses_that_friend_s_history(bot: FakeILink, serve: str) -> None:
    before = turns(serve, "老妈")
    token = bot.inject("@老妈: 晚饭吃什么")
    until(lambda: turns(serve, "老妈") == before + 1)
    until(lambda: replies_to(bot, token) == turn_bubbles(serve, "老妈")[-1])
    assert [m["text"] for m in turn_bubbles_friend_lines(serve, "老妈")][-1] == "晚饭吃什么"


def test_draft_mode_toggles(bot: FakeILink, serve: str) -> None:
    """/draft: unprefixed messages are drafts for clawbot.draft_friend; /chat: back to the avatar."""
    on = bot.inject("/draft")
    until(lambda: bool(replies_to(bot, on)))
    assert replies_to(bot, on)[0].startswith("草稿模式")
    before, mine = turns(serve, "朋友"), turns(serve, ME)
    bot.inject("她说明天下雨")
    until(lambda: turns(serve, "朋友") == before + 1)
    off = bot.inject("/chat")
    until(lambda: bool(replies_to(bot, off)))
    bot.inject("我回来了")
    until(lambda: turns(serve, ME) == mine + 1)
    assert turns(serve, "朋友") == before + 1


def turn_bubbles_friend_lines(serve: str, friend: str) -> list[dict[str, Any]]:
    from sim.harness import said_to

    return [m for m in said_to(serve, friend) if m["role"] == "friend"]


def test_a_repeated_message_id_is_answered_once_and_strangers_not_at_all(bot: FakeILink, serve: str,
                                                                         workspace: Path) -> None:  # fmt: skip
    before = turns(serve, ME)
    bot.inject("重复", message_id=4242)
    bot.inject("重复", message_id=4242)
    bot.inject("我是谁", sender="stranger@im.wechat")
    until(lambda: any(line["user"] == "stranger@im.wechat" for line in journal(workspace)))
    assert turns(serve, ME) == before + 1  # handled in order: the stranger came after both copies
    assert turns(serve, "clawbot:stranger@im.wechat") == 0
    assert journal(workspace)[-1]["verdict"] == "blocked"


def test_the_kill_switch_stops_replies(bot: FakeILink, serve: str, workspace: Path) -> None:
    assert run_cli("connect", "--stop", "-w", workspace).returncode == 0
    try:
        before = turns(serve, ME)
        bot.inject("还在吗")
        until(lambda: journal(workspace)[-1].get("verdict") == "stopped")
        assert turns(serve, ME) == before
    finally:
        assert run_cli("connect", "--resume", "-w", workspace).returncode == 0


def test_an_expired_session_logs_in_again(bot: FakeILink, serve: str) -> None:
    bot.expire()
    until(lambda: bot.logins == 2)
    before = turns(serve, ME)
    token = bot.inject("重新登录了吗")
    until(lambda: turns(serve, ME) == before + 1)
    until(lambda: replies_to(bot, token) == turn_bubbles(serve, ME)[-1])
    assert bot.token == "bot-token-2"


def test_rate_limited_sends_back_off_and_arrive_once_each(workspace: Path, serve: str, tmp_path: Path) -> None:
    """The simulator wants 0.6 s between sends, connect is set to 0.1: ret=-2, back off, resend."""
    ws = Path(shutil.copytree(workspace, tmp_path / "ws", ignore=shutil.ignore_patterns("channels")))
    sim = FakeILink(min_gap_s=0.6)
    with running(sim.app()) as base, Connect(ws, "clawbot", channels(serve, base, min_gap_s=0.1, backoff_s=0.3)):
        until(lambda: sim.polls > 0)
        before = turns(serve, ME)
        tokens = [sim.inject(f"快{i}") for i in range(3)]
        until(lambda: turns(serve, ME) == before + 3)
        expected = expected_since(serve, ME, before)
        until(lambda: len(sim.sent) >= len(expected))
    assert [text for _, _, text, _ in sim.sent] == expected  # each once, in order
    assert sim.refused >= 1 and all(ctx in tokens for *_, ctx in sim.sent)
