"""Windows over one very long session (a decade's chat with `session_gap_hours: 0`) are the
ones a direct, obviously-correct reading of the rule gives, and the ones a short cut gives."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_dataset import build

from wechat_avatar.dataset.window import Line, windows

LONG = 30_000


def session_of(n: int, seed: int = 7) -> list[Line]:
    """n lines in one session: runs of you and of friends, of random lengths (up to 14, so
    runs longer than the window occur)."""
    rng = random.Random(seed)
    lines: list[Line] = []
    me = False
    while len(lines) < n:
        for _ in range(min(rng.choice([1, 1, 1, 2, 3, 5, 14]), n - len(lines))):
            i = len(lines)
            lines.append(Line(i, me, "我" if me else f"友{rng.randrange(3)}", f"第{i}条", "text", i * 1000))
        me = rng.random() < 0.55 if not me else False
    return lines


def reference(session: list[Line], window: int) -> list[tuple[list[list[Line]], list[Line]]]:
    """The rule, read directly: each run of your lines is a reply; its context is the `window`
    lines just before its first bubble, grouped by side, leading lines of yours dropped."""
    out = []
    for j, line in enumerate(session):
        if not line.is_self or (j and session[j - 1].is_self):
            continue  # not the first bubble of a reply
        end = j
        while end < len(session) and session[end].is_self:
            end += 1
        before = session[max(0, j - window) : j]
        while before and before[0].is_self:
            before = before[1:]
        turns: list[list[Line]] = []
        for b in before:
            if turns and turns[-1][0].is_self == b.is_self:
                turns[-1].append(b)
            else:
                turns.append([b])
        if turns:
            out.append((turns, session[j:end]))
    return out


def test_a_long_session_gives_the_reference_windows() -> None:
    session = session_of(LONG)
    for window in (1, 3, 10, 40):
        found = [(turns, reply) for turns, reply in windows(session, window)]
        assert len(found) > LONG // 20
        assert found == reference(session, window)


def test_a_long_session_gives_what_a_short_cut_of_it_gives() -> None:
    """The windows of the first 2,000 lines, cut from the long session, are its first windows
    (the last reply of the cut may be cut itself, so it is left out)."""
    session = session_of(LONG)
    long = list(windows(session, 10))
    short = list(windows(session[:2000], 10))[:-1]
    assert short and long[: len(short)] == short


@pytest.mark.parametrize("parallel", [False, True])
def test_chats_sent_in_pieces_write_what_whole_chats_do(
    export: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    """Stage 1 hands a busy chat to stage 2 in pieces: the files and the statistics are the same."""
    from wechat_avatar.dataset import build as stage1

    ws = tmp_path / "ws"
    assert run_cli("ingest", export.out, "--workspace", ws).returncode == 0
    whole = build(ws, test_ratio=0.2, session_gap_hours=0)
    files = {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")}
    monkeypatch.setattr(stage1, "PIECE", 37)  # every chat of more than 37 messages goes in pieces
    monkeypatch.setattr(stage1, "PARALLEL_MIN_MESSAGES", 1 if parallel else 10**9)
    pieces = build(ws, test_ratio=0.2, session_gap_hours=0)
    assert {p.relative_to(ws): p.read_bytes() for p in (ws / "dataset").rglob("*.jsonl")} == files
    assert pieces.stats == whole.stats
    assert max(pieces.stats.messages_per_chat.values()) > 37 * 3
