"""Ranked candidates -> preference pairs: what the reward model, DPO and PPO's prompts learn from.

The seed's format, one JSON object a line (workspace/rlhf/ranked.jsonl):

    {"source": "驾校周师傅:今天下午一点四十来练车\\n乌冬面:科三哈\\n驾校周师傅:肯定是的",
     "resp1": "为啥迟到？<s>[尴尬]", "resp2": "好<s>[手机图片]<s>收到", "resp3": "好<s>收到",
     "scores": ["1", "3", "2"]}

`source` is the context, one `name:text` line per message (the avatar's own lines under its own
name); `respN` are k candidate replies (bubbles joined by <s>); `scores[i]` scores `resp{i+1}`,
higher is better (numbers or numeric strings, as the seed wrote them). Every ordered pair of
candidates with different scores is one pair, the higher-scored one chosen; ties make no pair.

Pure functions, no model: `rlhf` (a later layer) reuses them to read and write the same file.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from wechat_avatar.dataset.prompt import prompt
from wechat_avatar.dataset.window import Line


class Ranked(NamedTuple):
    """One context with its k scored candidate replies."""

    source: str
    responses: tuple[str, ...]
    scores: tuple[float, ...]


class Pair(NamedTuple):
    """One preference: `chosen` scored higher than `rejected` for the same context."""

    source: str
    chosen: str
    rejected: str
    margin: float  # score difference, > 0


class BadRecord(ValueError):
    """A ranked line that cannot be used; str() names what is wrong in a few words."""


def _response_keys(record: dict[str, Any]) -> list[str]:
    """resp1..respK in order; a gap (resp1, resp3) is an error."""
    keys = sorted((k for k in record if k.startswith("resp") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    if [int(k[4:]) for k in keys] != list(range(1, len(keys) + 1)):
        raise BadRecord(f"candidates must be resp1..respK without gaps, got {', '.join(keys) or 'none'}")
    return keys


def _score(value: Any) -> float:
    if isinstance(value, bool):
        raise BadRecord(f"score {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRecord(f"score {value!r} is not a number") from None
    if not math.isfinite(number):
        raise BadRecord(f"score {value!r} is not a finite number")
    return number


def parse_ranked(record: Any) -> Ranked:
    """A decoded JSON line -> Ranked; anything unusable raises BadRecord saying what."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    missing = [k for k in ("source", "scores") if k not in record]
    if missing:
        raise BadRecord(f"missing field {', '.join(missing)}")
    keys = _response_keys(record)
    if len(keys) < 2:
        raise BadRecord(f"needs at least 2 candidates (resp1, resp2, …), got {len(keys)}")
    if not isinstance(record["source"], str) or not record["source"].strip():
        raise BadRecord("source is empty")
    responses = tuple(record[k] for k in keys)
    if any(not isinstance(r, str) or not r.strip() for r in responses):
        raise BadRecord("a candidate reply is empty")
    if not isinstance(record["scores"], list) or len(record["scores"]) != len(responses):
        got = len(record["scores"]) if isinstance(record["scores"], list) else "no list"
        raise BadRecord(f"{len(responses)} candidates but {got} scores")
    return Ranked(record["source"], responses, tuple(_score(s) for s in record["scores"]))


def read_ranked(path: Path) -> tuple[list[Ranked], Counter[str]]:
    """The usable records of a ranked.jsonl, and why the others were skipped (reason -> count)."""
    records: list[Ranked] = []
    skipped: Counter[str] = Counter()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(parse_ranked(json.loads(line)))
            except json.JSONDecodeError:
                skipped["not JSON"] += 1
            except BadRecord as bad:
                skipped[str(bad)] += 1
    return records, skipped


def pairs(record: Ranked) -> list[Pair]:
    """Every ordered pair with different scores, the higher-scored reply chosen; ties give no pair.

    3 candidates scored (1, 3, 3) give 2 pairs (resp2 > resp1, resp3 > resp1); (1, 2, 3) give 3."""
    out = []
    for i, (reply_i, score_i) in enumerate(zip(record.responses, record.scores, strict=True)):
        for reply_j, score_j in zip(record.responses[i + 1 :], record.scores[i + 1 :], strict=True):
            if score_i == score_j:
                continue
            chosen, rejected = (reply_i, reply_j) if score_i > score_j else (reply_j, reply_i)
            out.append(Pair(record.source, chosen, rejected, abs(score_i - score_j)))
    return out


def all_pairs(records: Iterable[Ranked]) -> list[Pair]:
    return [pair for record in records for pair in pairs(record)]


def best(record: Ranked) -> str:
    """The highest-scored candidate (the first of equals): what an SFT-style target would be."""
    return record.responses[max(range(len(record.scores)), key=lambda i: (record.scores[i], -i))]


# --- the context as text, and back as the messages a model is asked to continue --------------------------------


def source_from_messages(messages: list[dict[str, str]], self_name: str) -> str:
    """A dataset conversation (system, `name:text` user turns, <s>-joined replies) -> the seed's source:
    one `name:text` line per message, the avatar's own bubbles under `self_name`."""
    lines = []
    for message in messages:
        if message["role"] == "user":
            lines += message["content"].split("\n")
        elif message["role"] == "assistant":
            lines += [f"{self_name}:{bubble}" for bubble in message["content"].split("<s>")]
    return "\n".join(lines)


def source_lines(source: str, self_name: str) -> list[Line]:
    """The seed's source -> Lines; a line without `name:` continues the message before it."""
    out: list[Line] = []
    for number, text in enumerate(source.split("\n")):
        name, colon, said = text.partition(":")
        if not colon and out:
            out[-1] = out[-1]._replace(text=f"{out[-1].text} {text}")
            continue
        if not colon:
            name, said = "朋友", text  # a source that names no one: someone else spoke
        out.append(Line(number, name == self_name, name, said, "text", 0))
    return out


def prompt_messages(source: str, self_name: str, system: str, window: int) -> list[dict[str, str]]:
    """The messages a model answers for this context: the project's one prompt builder (dataset/prompt.py)."""
    return prompt(source_lines(source, self_name), system, window)


def fit_prompt(messages: list[dict[str, str]], length: Callable[[list[dict[str, str]]], int],
               budget: int) -> tuple[list[dict[str, str]], int]:  # fmt: skip
    """The prompt without its oldest turns until `length(prompt) <= budget` (the system prompt and the
    last turn always stay), and how many messages were dropped: for trainers that would otherwise
    drop or cut a long example themselves (TRL's DPO keeps a sequence's start)."""
    kept = list(messages)
    while length(kept) > budget and len(kept) > 2:
        del kept[1]
        if len(kept) > 2 and kept[1]["role"] == "assistant":  # a prompt's turns start with a friend's
            del kept[1]
    return kept, len(messages) - len(kept)
