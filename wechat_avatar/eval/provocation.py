"""The provocation slice: held-out samples whose last friend message picks a fight with you.

eval reports the rude share of replies there apart from the general split (where rudeness is
rare), next to the person's own replies to the same messages; RLHF reports its cut against it.

Nothing in the dataset labels a provocation, and a real user has no such labels either, so the
slice is recognised from the text the pipeline has: the last line of the context's final user turn
(`name:content`, the friend's latest message) is a provocation when it matches one of the cues —
`DEFAULT_CUES` below, plus any the user adds (`eval.provocation_cues` in avatar.yaml). The default
cues are common Chinese taunts and a partner's fight openers; they were written with the synthetic
persona's provocations (`synth/phrases.py`) in view, so on synthetic data they catch every one of
them (tests/test_provocation.py checks the selection against synth's own lists). On your own
history, add the lines that set your friends off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# Regular expressions over the friend's message, matched anywhere in it. Taunts aimed at "you"
# (你 … 菜/笨/猪), insults, jibes about skill or reliability, and the classic openers of a fight.
DEFAULT_CUES: tuple[str, ...] = (
    r"你.{0,4}(?:菜|笨|蠢|傻|猪|废物|垃圾)",
    r"憨批|傻逼|(?<![a-z])sb(?![a-z])|智障|脑残|白痴|蠢货",
    r"菜就多练|会不会打|好意思说|还有信用|又鸽",
    r"不在乎我|不回我(?:消息)?|说好的呢|错哪了?|又在打游戏",
)


def matcher(extra: Iterable[str] = ()) -> re.Pattern[str]:
    """One pattern for the default cues and the user's own (regular expressions, case-insensitive)."""
    return re.compile("|".join(f"(?:{cue})" for cue in (*DEFAULT_CUES, *extra)), re.I)


def last_friend_line(context: Sequence[dict[str, Any]]) -> str:
    """The friend's latest message: the last line of the final user turn, its `name:` prefix cut."""
    users = [m for m in context if m.get("role") == "user"]
    if not users:
        return ""
    lines = str(users[-1]["content"]).splitlines()
    line = lines[-1] if lines else ""
    name, colon, text = line.partition(":")
    return text if colon else name


def is_provocation(context: Sequence[dict[str, Any]], pattern: re.Pattern[str]) -> bool:
    return bool(pattern.search(last_friend_line(context)))
