"""The one prompt builder: a conversation so far -> the messages a model is asked to continue.

The dataset writes each sample as the system prompt, `name:content` user turns and `<s>`-joined
replies over a window of earlier messages of one session (formats.py, window.py). Chat and serve
build the prompt for the next reply with the same functions, so a model is asked exactly what it
learned from:

    [Line(friend "胡三行" "在吗"), Line(self "好"), Line(friend "胡三行" "吃饭去？")]
    -> [{"role": "system", ...}, {"role": "user", "content": "胡三行:在吗"},
        {"role": "assistant", "content": "好"}, {"role": "user", "content": "胡三行:吃饭去？"}]

With memory on (`memory.enabled`), the system prompt is followed by one block of your own past
exchanges (memory/recall.py picks them, before the conversation's session, the same friend's first):

    <system prompt>

    你记得的过往聊天（越靠前越相关，仅供参考）：
    [2023-05-02 胡三行] 胡三行:你是哪里人来着 → 你:绍兴的<s>黄酒那个绍兴
    [2023-03-18 阿杰] 阿杰:过年回家吗 → 你:回<s>回绍兴老家待一周

No memories: no block at all, and the prompt is byte for byte the one without memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from wechat_avatar.dataset import formats
from wechat_avatar.dataset.window import Line, context, runs, sessions

MEMORY_HEADER = "你记得的过往聊天（越靠前越相关，仅供参考）："


class Remembered(NamedTuple):
    """One past exchange of yours as the memory block shows it (text already pseudonymised)."""

    day: str  # YYYY-MM-DD in the user's time zone
    friend: str  # who you were answering
    said: str  # what they said, one message per " / "
    reply: str  # your bubbles, joined with <s>


def memory_line(m: Remembered) -> str:
    return f"[{m.day} {m.friend}] {m.friend}:{m.said} → 你:{m.reply}"


def memory_block(memories: Sequence[Remembered]) -> str:
    """The block, or "" where there is nothing to remember (never a header alone)."""
    return "\n".join([MEMORY_HEADER, *map(memory_line, memories)]) if memories else ""


def with_memory(system: str, memories: Sequence[Remembered]) -> str:
    """The system prompt with the memory block after it; the system prompt itself when there is none."""
    return f"{system}\n\n{memory_block(memories)}" if memories else system


def prompt(
    lines: list[Line], system: str, window: int, session_gap_ms: int = 0, memories: Sequence[Remembered] = ()
) -> list[dict[str, str]]:
    """The messages for the reply that follows `lines` (oldest first; the last should be a friend's).

    Only the last session counts (a gap over `session_gap_ms` starts a new one, 0 = never), and of
    it the last `window` messages, cut to start with a friend's turn, as in `windows`. With no
    friend's line left the prompt is the system prompt alone."""
    last: list[Line] = []
    for last in sessions(lines, session_gap_ms):  # noqa: B007  # only the last session is kept
        pass
    turns = context(runs(last), window)
    if turns and turns[-1][0].is_self:  # nothing to reply to after the avatar's own last words
        turns = context(turns[:-1], window)
    out = [{"role": "system", "content": with_memory(system, memories)}]
    for i, turn in enumerate(turns):
        role = "assistant" if i % 2 else "user"
        out.append({"role": role, "content": formats.bubbles(turn) if i % 2 else formats.user_text(turn)})
    return out
