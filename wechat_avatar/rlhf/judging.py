"""`rlhf judge`: score the ranked file's unlabeled records, offline or through an LLM judge.

Records are read, judged outside the file's lock (an LLM judge may take minutes; the label page
keeps saving meanwhile), and merged back: a record someone labeled in the meantime wins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from wechat_avatar.dataset.splits import self_name
from wechat_avatar.rlhf import judge as offline
from wechat_avatar.rlhf.llm_judge import LLMJudge
from wechat_avatar.rlhf.ranked import Ranked, RankedFile, update
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[[int], None]]


class Judged(NamedTuple):
    path: Path
    judged: int
    labeled: int  # left as a person labeled them
    unchanged: int  # judged before and not asked to judge again
    fell_back: list[str]  # one line per context the LLM judge could not score (offline scores kept)
    problems: list[str]  # the ranked file's bad records (kept in it as they were)


def to_judge(ranked: RankedFile, again: bool) -> list[Ranked]:
    """The records a judge should score: not labeled, and not judged yet unless `again`."""
    return [r for r in ranked.records if not r.labeled and (again or not r.judge)]


def judge_workspace(workspace: Workspace, llm: LLMJudge | None = None, *, again: bool = False,
                    progress: Progress | None = None) -> Judged:  # fmt: skip
    ranked = RankedFile.read(workspace.ranked)
    todo = to_judge(ranked, again)
    name, voice = self_name(workspace), offline.voice_of(workspace)
    advance = progress("rlhf judge", len(todo)) if progress else (lambda n: None)
    judged, fell_back = [], []
    for record in todo:
        scored = offline.judge(record, name, voice)
        if llm is not None:
            try:
                scored = record.rescored(llm.score(record.source, record.responses), judge=llm.name)
            except ValueError as err:
                first = record.source.split("\n")[-1][:40]
                fell_back.append(f"{first!r}: {err}; kept the offline judge's scores")
        judged.append(scored)
        advance(1)
    written, _ = update(workspace.ranked, judged)
    labeled = sum(r.labeled for r in ranked.records)
    return Judged(written.path, len(judged), labeled, len(ranked.records) - labeled - len(todo), fell_back,
                  written.problems)  # fmt: skip
