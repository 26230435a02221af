"""Knowledge probes: does the avatar know what the person knows, with memory and without?

A probe file is a synthetic export's side file (`synth.json`: "facts" with their `match` words and
"probes", questions a friend asks after the history ends; synth/facts.py). Each probe becomes a
one-turn conversation, `friend:question`, under the dataset's system prompt — and once more with
the memory block recalled for it (only exchanges before the probe's time). Two shares per run:

    recall   replies that state the right fact (contain one of its match words)
    generic  replies that say nothing: GENERIC below, a lone sticker or emoji, or empty
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from wechat_avatar.dataset.prompt import with_memory
from wechat_avatar.errors import UsageError

# What a reply that dodges the question says; matched on the whole reply, its <s> bubbles one by one.
GENERIC = frozenset(
    ("好的", "好的捏", "好", "行", "ok", "收到", "嗯", "嗯嗯", "哦", "可以", "冲", "开冲", "哈哈", "哈哈哈", "哈哈哈哈",
     "哈哈哈哈哈", "笑死", "绝了", "离谱", "是吧", "在", "在的", "我先睡会", "睡了", "…", "")
)  # fmt: skip
_LONE_MARK = re.compile(r"(?:\[[^\[\]]{1,8}\])+")  # [表情包], [捂脸][捂脸]: a sticker or emoji and nothing else


class Probe(NamedTuple):
    fact: str
    friend: str
    question: str
    ts_ms: int
    match: tuple[str, ...]


def load_probes(path: Path) -> list[Probe]:
    """The probes of a synth.json; a clear error for a file that has none."""
    try:
        made = json.loads(Path(path).read_text(encoding="utf-8"))
        match = {f["key"]: tuple(f["match"]) for f in made["facts"]}
        probes = [Probe(p["fact"], p["friend"], p["question"], int(p["ts_ms"]), match[p["fact"]])
                  for p in made["probes"]]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(
            f"{path} is no probe file ({err})", hint="pass the synth.json that `wechat-avatar synth` wrote"
        ) from None
    if not probes:
        raise UsageError(f"{path} holds no probes", hint="make the export with a newer `wechat-avatar synth`")
    return probes


def conversation(probe: Probe, system: str, memories: list[Any] | None = None) -> list[dict[str, str]]:
    return [{"role": "system", "content": with_memory(system, memories or [])},
            {"role": "user", "content": f"{probe.friend}:{probe.question}"}]  # fmt: skip


def is_generic(reply: str) -> bool:
    bubbles = [b.strip() for b in reply.split("<s>")]
    return all(b in GENERIC or _LONE_MARK.fullmatch(b) for b in bubbles)


def score(probes: list[Probe], replies: list[str]) -> dict[str, Any]:
    stated = [any(w in r for w in p.match) for p, r in zip(probes, replies, strict=True)]
    n = max(len(probes), 1)
    by_fact: dict[str, list[bool]] = {}
    for p, ok in zip(probes, stated, strict=True):
        by_fact.setdefault(p.fact, []).append(ok)
    replies_out = [
        {"fact": p.fact, "question": p.question, "reply": r, "stated": ok}
        for p, r, ok in zip(probes, replies, stated, strict=True)
    ]
    return {
        "probes": len(probes),
        "recall": 100 * sum(stated) / n,
        "generic": 100 * sum(map(is_generic, replies)) / n,
        "by_fact": {fact: 100 * sum(oks) / len(oks) for fact, oks in by_fact.items()},
        "replies": replies_out,
    }
