"""The shared core on its own: bubbles fitted to a channel's limits, paced in order, the kill switch
between bubbles, the allowlist's verdicts. (The tiny model seldom says <s>, so several bubbles of
one reply are exercised here; the end-to-end tests pace whole replies against the simulators.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from wechat_avatar.channels.core import Guard, Pace, deliver, fit


def test_fit_merges_the_overflow_into_the_last_bubble_and_cuts_at_a_character() -> None:
    assert fit([" a ", "", "b", "c", "d"], 3) == ["a", "b", "c\nd"]
    assert fit(["你好世界"], 5, max_bytes=7) == ["你好"]  # 6 bytes: the third character would split


def test_bubbles_go_out_in_order_and_spaced_by_at_least_the_minimum(tmp_path: Path) -> None:
    sent: list[tuple[float, str]] = []
    guard = Guard(frozenset({"u"}), False, tmp_path / "STOP")

    async def send(text: str) -> None:
        sent.append((time.monotonic(), text))

    pace = Pace(min_s=0.2, per_char_s=0.0, max_s=0.2, jitter_s=0.05)
    done = asyncio.run(deliver(["一", "二", "三", "四"], send, pace, guard))
    assert done.sent == 4 and [t for _, t in sent] == ["一", "二", "三", "四"]
    assert all(b[0] - a[0] >= 0.2 for a, b in itertools.pairwise(sent))


def test_the_kill_switch_stops_a_reply_between_bubbles(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    guard = Guard(frozenset({"u"}), False, stop)
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)
        stop.write_text("stop")  # switched on while the first bubble goes out

    done = asyncio.run(deliver(["一", "二", "三"], send, Pace(0, 0, 0, 0), guard))
    assert sent == ["一"] and done.stopped


def test_verdicts(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    assert Guard(frozenset(), False, stop).verdict("u") == "blocked"  # nobody until configured
    assert "nobody yet" in Guard(frozenset(), False, stop).describe()
    assert Guard(frozenset({"*"}), False, stop).verdict("anyone") == "reply"
    assert Guard(frozenset({"u"}), True, stop).verdict("u") == "draft"
    assert Guard(frozenset(), False, stop, always=frozenset({"owner"})).verdict("owner") == "reply"
    stop.write_text("")
    assert Guard(frozenset({"u"}), False, stop).verdict("u") == "stopped"
