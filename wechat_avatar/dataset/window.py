"""Sessions, context windows and turns: the seed's rules for what a reply gets to see.

chat (one chat, time order) -> sessions (split where the gap exceeds session_gap)
session -> one candidate per run of your own messages (a reply of several bubbles),
           with at most `window` earlier messages of the same session as context
context -> alternating turns: friends' lines as one user turn, yours as one assistant turn
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple


class Line(NamedTuple):
    """One message as the dataset sees it (text already pseudonymised)."""

    id: int  # messages.id in chat.db
    is_self: bool
    name: str  # the speaker's display name in this chat
    text: str
    category: str
    ts_ms: int


@dataclass
class Candidate:
    """A possible sample: `turns` alternate user/assistant and end with a user turn; `reply` follows."""

    chat_id: str
    chat_name: str
    is_group: bool
    session_key: str  # identifies the session: the split is decided per session
    turns: list[list[Line]]
    reply: list[Line]
    dropped: str = ""  # the cleaning rule that dropped it; "" = kept

    @property
    def message_ids(self) -> list[int]:
        return [line.id for turn in self.turns for line in turn] + [line.id for line in self.reply]

    @property
    def reply_text(self) -> str:
        return "<s>".join(line.text for line in self.reply)

    @property
    def last_user_text(self) -> str:
        return "\n".join(line.text for line in self.turns[-1])


def sessions(lines: list[Line], gap_ms: int) -> Iterator[list[Line]]:
    """Split one chat's lines where two messages are more than `gap_ms` apart (0 = never)."""
    current: list[Line] = []
    for line in lines:
        if current and gap_ms and line.ts_ms - current[-1].ts_ms > gap_ms:
            yield current
            current = []
        current.append(line)
    if current:
        yield current


def runs(lines: list[Line]) -> list[list[Line]]:
    """Consecutive lines of the same side (you / everyone else) merged into one turn."""
    turns: list[list[Line]] = []
    for line in lines:
        if turns and turns[-1][0].is_self == line.is_self:
            turns[-1].append(line)
        else:
            turns.append([line])
    return turns


def windows(session: list[Line], window: int) -> Iterator[tuple[list[list[Line]], list[Line]]]:
    """(context turns, reply) for each run of your messages that has someone to reply to.

    The context is the `window` messages before the reply's first bubble, cut to start with a
    user turn (Firefly pairs need one; a leading turn of yours is context of nothing). Turns
    are shared between windows, not copied: only the earliest, cut one is new. Each reply
    looks back over at most `window` turns, so a session costs O(lines), however long.
    """
    turns = runs(session)
    for k, reply in enumerate(turns):
        if not reply[0].is_self:
            continue
        if seen := context_before(turns, k, window):
            yield seen, reply


def context(turns: list[list[Line]], window: int) -> list[list[Line]]:
    """The last `window` messages of `turns` (a turn may be cut), starting with a user turn.

    What a reply gets to see: the dataset cuts each sample's context with it, and serving
    cuts the conversation so far the same way (dataset/prompt.py)."""
    return context_before(turns, len(turns), window)


def context_before(turns: list[list[Line]], end: int, window: int) -> list[list[Line]]:
    """`context(turns[:end], window)` without copying `turns[:end]`: walks back from `end`
    by index, over at most `window` turns (each holds at least one message)."""
    seen: list[list[Line]] = []
    budget = window
    i = end - 1
    while i >= 0 and budget > 0:
        turn = turns[i]
        seen.append(turn if len(turn) <= budget else turn[-budget:])
        budget -= len(turn)
        i -= 1
    seen.reverse()
    while seen and seen[0][0].is_self:
        seen.pop(0)
    return seen
