"""The ranked file as training examples: preference pairs and prompts that fit a token budget.

Reading the file (the seed's format, bad records, `pairs`, source <-> messages) is rlhf/ranked.py's
job; this adds only what training needs: every record's pairs as one list, the workspace's records
with an error when they give nothing to learn, and prompts cut from the left to fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

from wechat_avatar.errors import TrainingError
from wechat_avatar.rlhf.ranked import Ranked, load_ranked, pairs
from wechat_avatar.workspace import Workspace


class Pair(NamedTuple):
    """One preference: `chosen` scored higher than `rejected` for the same context."""

    source: str
    chosen: str
    rejected: str


def all_pairs(records: Iterable[Ranked]) -> list[Pair]:
    return [Pair(record.source, chosen, rejected) for record in records for chosen, rejected in pairs(record)]


def read_pairs(workspace: Workspace) -> tuple[list[Ranked], dict[str, int]]:
    """The usable ranked records, and what was skipped (reason -> count); no file or no pair at all is an error."""
    path = workspace.ranked
    if not path.is_file():
        raise TrainingError(f"no ranked candidates at {path}", hint="run `wechat-avatar rlhf sample`, `rlhf judge` "
                            "(and `rlhf label` to correct it) first, or `rlhf import` the seed's file")  # fmt: skip
    records, problems = load_ranked(path)
    skipped = Counter(problem.rpartition(": ")[2] for problem in problems)  # "ranked.jsonl:7: why" -> why
    if not all_pairs(records):
        why = "; ".join(f"{n} × {reason}" for reason, n in skipped.items()) or "every context's scores are tied"
        raise TrainingError(f"{path} gives no preference pair ({len(records)} usable records; {why})",
                            hint="score the candidates differently (`wechat-avatar rlhf label`)")  # fmt: skip
    return records, dict(skipped)


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
