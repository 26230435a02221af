"""The one prompt builder: a conversation so far -> the messages a model is asked to continue.

The dataset writes each sample as the system prompt, `name:content` user turns and `<s>`-joined
replies over a window of earlier messages of one session (formats.py, window.py). Chat and serve
build the prompt for the next reply with the same functions, so a model is asked exactly what it
learned from:

    [Line(friend "胡三行" "在吗"), Line(self "好"), Line(friend "胡三行" "吃饭去？")]
    -> [{"role": "system", ...}, {"role": "user", "content": "胡三行:在吗"},
        {"role": "assistant", "content": "好"}, {"role": "user", "content": "胡三行:吃饭去？"}]
"""

from __future__ import annotations

from wechat_avatar.dataset import formats
from wechat_avatar.dataset.window import Line, context, runs, sessions


def prompt(lines: list[Line], system: str, window: int, session_gap_ms: int = 0) -> list[dict[str, str]]:
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
    out = [{"role": "system", "content": system}]
    for i, turn in enumerate(turns):
        role = "assistant" if i % 2 else "user"
        out.append({"role": role, "content": formats.bubbles(turn) if i % 2 else formats.user_text(turn)})
    return out
