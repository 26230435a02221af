"""Corrections made while chatting: a thumbs-down on the avatar's last reply and the reply you would
have sent, into the same ranked file as everything else.

The terminal `chat` (`/bad BETTER`) and `serve` (POST /v1/avatar/corrections, which the chat page
calls through `web`) both hold the conversation: the context is the prompt the model answered (so
its `source` is what training will ask again), and the record has two candidates, yours scored
above the avatar's, labeled — a person wrote it, so no judge or import replaces it.
"""

from __future__ import annotations

from pathlib import Path

from wechat_avatar.dataset.window import Line
from wechat_avatar.errors import UsageError
from wechat_avatar.generate import BUBBLE, bubbles
from wechat_avatar.rlhf.ranked import Ranked, source_of, update


def last_reply(lines: list[Line]) -> tuple[list[Line], list[Line]]:
    """The conversation before the avatar's last reply, and that reply's bubbles ([] if it has none)."""
    end = len(lines)
    while end and not lines[end - 1].is_self:
        end -= 1  # the friend spoke after it: the reply is still the last the avatar sent
    start = end
    while start and lines[start - 1].is_self:
        start -= 1
    return lines[:start], lines[start:end]


def correction(conversation: list[dict[str, str]], said: str, better: str, self_name: str, origin: str) -> Ranked:
    """The record: the context the model answered, your reply scored 2 above its 1."""
    better = BUBBLE.join(bubbles(better))
    if not better:
        raise UsageError("the better reply is empty", hint="type the reply you would have sent (bubbles split by <s>)")
    if better == BUBBLE.join(bubbles(said)):
        raise UsageError("the better reply is the avatar's own", hint="type a different reply, or leave it be")
    source = source_of(conversation, self_name)
    return Ranked(source, (better, said), (2.0, 1.0), labeled=True, origin=origin)


def record(path: Path, conversation: list[dict[str, str]], said: str, better: str, self_name: str,
           origin: str) -> Ranked:  # fmt: skip
    """Write the correction into the ranked file at `path` (atomic, under its lock); returns it."""
    made = correction(conversation, said, better, self_name, origin)
    update(path, [made])
    return made
