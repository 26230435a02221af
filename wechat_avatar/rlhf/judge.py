"""`rlhf judge`, offline: score each context's k candidates 1..k from three parts, none needing a network.

    civility   0..1  the judge's own measure (civility.py; independent of eval's is_rude)
    style      0..1  in character: bubble count and bubble length near the person's own means (from
                     the train split's real replies), and a sticker/emoji about as often as they use one
    relevance  0..1  answers the last message: shares its words (jieba) or answers a question with
                     words, not only a sticker; echoing it back word for word is not an answer

    total = 0.5·civility + 0.3·style + 0.2·relevance

Civility weighs most: the seed's goal is calm replies in the person's voice. The k totals become
ranks: a candidate's score is 1 + how many candidates it beats, so the best of three scores 3,
the worst 1, and equal totals share a score (no training pair between them). Records a person
labeled are left alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Sequence
from typing import NamedTuple

from wechat_avatar.categories import CATEGORIES
from wechat_avatar.rlhf.civility import civility
from wechat_avatar.rlhf.ranked import Ranked, lines_of
from wechat_avatar.workspace import Workspace

WEIGHTS = {"civility": 0.5, "style": 0.3, "relevance": 0.2}
OFFLINE = "offline"  # the `judge` field of records it scored
_CODE = re.compile(r"\[[^\[\]\s<>]{1,10}\]")
_NOT_STICKER = frozenset(c.placeholder for c in CATEGORIES.values() if c.placeholder.startswith("[")) - {
    CATEGORIES["sticker"].placeholder}  # fmt: skip
_QUESTION = re.compile(r"[？?]|吗|么|呢$|什么|怎么|为什么|几[点个天]|哪|多少|是不是|要不要|能不能|会不会")


class Voice(NamedTuple):
    """How the person writes: the means style compares a candidate with."""

    bubbles_per_reply: float
    chars_per_bubble: float
    sticker_rate: float  # share of replies with a sticker or emoji code

    @classmethod
    def of(cls, replies: Sequence[str]) -> Voice:
        split = [_bubbles(r) for r in replies if _bubbles(r)]
        if not split:
            return cls(1.5, 6.0, 0.3)  # nothing to learn from: a typical WeChat reply
        chars = [len(b) for bs in split for b in bs]
        return cls(statistics.fmean(map(len, split)), statistics.fmean(chars),
                   sum(has_sticker(r) for r in replies if _bubbles(r)) / len(split))  # fmt: skip


def voice_of(workspace: Workspace) -> Voice:
    """The person's voice from dataset/messages/train.jsonl's real replies (the last assistant turn of each)."""
    path = workspace.split("train")
    replies = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                last = json.loads(line)["messages"][-1]
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # the dataset's own bad line is the dataset's report's business
            if isinstance(last, dict) and last.get("role") == "assistant":
                replies.append(str(last.get("content", "")))
    return Voice.of(replies)


def _bubbles(reply: str) -> list[str]:
    return [b.strip() for b in reply.split("<s>") if b.strip()]


def has_sticker(reply: str) -> bool:
    return any(code not in _NOT_STICKER for code in _CODE.findall(reply))


def _near(value: float, target: float) -> float:
    """1 at the target, falling with the log-ratio: twice or half as much scores 0.5."""
    return 1 / (1 + abs(math.log2((value + 1) / (target + 1))))


def style(reply: str, voice: Voice) -> float:
    bubbles = _bubbles(reply)
    if not bubbles:
        return 0.0
    chars = statistics.fmean(len(b) for b in bubbles)
    sticker = voice.sticker_rate if has_sticker(reply) else 1 - voice.sticker_rate
    return (_near(len(bubbles), voice.bubbles_per_reply) + _near(chars, voice.chars_per_bubble) + sticker) / 3


def _words(text: str) -> set[str]:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict…" lines on stderr
    return {w for w in jieba.lcut(_CODE.sub(" ", text)) if len(w.strip()) > 1 or "\u4e00" <= w <= "\u9fff"} - {
        "的", "了", "是", "我", "你", "吗", "呢", "啊", "吧", "嗯", "哦"}  # fmt: skip


def relevance(reply: str, last: str) -> float:
    """How well `reply` answers `last` (the friend's last message)."""
    spoken = _CODE.sub("", reply.replace("<s>", "")).strip()
    if spoken.replace(" ", "") == _CODE.sub("", last).strip().replace(" ", "") and spoken:
        return 0.05  # a parrot
    theirs, ours = _words(last), _words(reply)
    overlap = len(theirs & ours) / len(theirs) if theirs else 0.0
    answers = 1.0 if spoken else 0.4  # a sticker alone is a reply, a weak one
    if _QUESTION.search(last) and not spoken:
        answers = 0.2
    return 0.5 * answers + 0.5 * min(1.0, 2 * overlap)


class Parts(NamedTuple):
    civility: float
    style: float
    relevance: float

    @property
    def total(self) -> float:
        return sum(WEIGHTS[name] * value for name, value in self._asdict().items())


def last_message(source: str, self_name: str) -> str:
    """The friend's last message of a context (what a candidate answers)."""
    friends = [line.text for line in lines_of(source, self_name) if not line.is_self]
    return friends[-1] if friends else ""


def parts(reply: str, last: str, voice: Voice) -> Parts:
    return Parts(civility(reply), style(reply, voice), relevance(reply, last))


def ranks(totals: Sequence[float]) -> tuple[float, ...]:
    """1 + how many others each beats: [0.2, 0.9, 0.5] -> (1, 3, 2); ties share: [0.5, 0.5, 0.1] -> (2, 2, 1)."""
    rounded = [round(t, 9) for t in totals]
    return tuple(float(1 + sum(o < t for o in rounded)) for t in rounded)


def judge(record: Ranked, self_name: str, voice: Voice) -> Ranked:
    last = last_message(record.source, self_name)
    totals = [parts(reply, last, voice).total for reply in record.responses]
    return record.rescored(ranks(totals), judge=OFFLINE, origin=record.origin or "judge")
