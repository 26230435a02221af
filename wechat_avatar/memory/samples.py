"""Memories for the dataset's own samples (eval's held-out ones, training's): recalled strictly
before the sample's session, never from the session itself, never from its future.

A sample is known by its line in dataset/meta.jsonl: its "session" key is the index's session
key (memory/exchanges.py), so the cutoff is that session's first message. What the friend said is
the sample's last user turn, `name:text` lines as dataset/formats.py writes them:

    meta {"split": "test", "session": "fcc0c5943177", …} + context […, {"role": "user",
    "content": "胡三行:你老家是哪儿的呀"}] -> recall("胡三行", "你老家是哪儿的呀", before=<session start>)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from wechat_avatar.dataset.prompt import Remembered, with_memory
from wechat_avatar.errors import DatasetError
from wechat_avatar.memory.exchanges import Exchange
from wechat_avatar.memory.profile import with_persona
from wechat_avatar.memory.recall import Recall
from wechat_avatar.workspace import Workspace

Messages = list[dict[str, str]]


def split_sessions(workspace: Workspace, split: str) -> list[str]:
    """The session key of every sample of `split`, in the order of its files (line n of meta's `split`
    samples is line n of each format's `split` file: the writer emits them together)."""
    path = workspace.dataset / "meta.jsonl"
    hint = f"rebuild it: `wechat-avatar dataset --workspace {workspace}`"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: no sample can be matched to its session", hint=hint)
    keys = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            meta = json.loads(line)
            if meta["split"] == split:
                keys.append(str(meta["session"]))
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"{path}:{n} is not a sample's meta line ({err})", hint=hint) from None
    return keys


def heard(context: Sequence[dict[str, str]]) -> tuple[str, str] | None:
    """(who spoke last, everything said in the last user turn), or None where the context has no user turn."""
    last = next((m["content"] for m in reversed(context) if m["role"] == "user"), None)
    if not last:
        return None
    said = [line.partition(":") for line in last.split("\n")]
    return said[-1][0], " ".join(text for _, _, text in said)


@dataclass
class SampleRecall:
    """Recall for samples of the dataset, with counts of what happened for the report."""

    recall: Recall
    samples: int = 0
    remembered: int = 0  # samples that got at least one memory
    unknown_sessions: int = 0  # sessions the index does not know (built before the dataset): no memory
    starts: dict[str, int | None] = field(default_factory=dict)
    exclude: frozenset[int] = frozenset()  # exchange ids never to recall (training: the held-out sessions')
    persona: str = ""  # the persona block (memory/profile.py), put before the memories in every sample

    def exchanges(self, session_key: str, context: Sequence[dict[str, str]]) -> list[Exchange]:
        self.samples += 1
        if session_key not in self.starts:
            self.starts[session_key] = self.recall.index.session_start(session_key)
        start, said = self.starts[session_key], heard(context)
        if start is None:
            self.unknown_sessions += 1
            return []
        picked = self.recall.pick(said[0], said[1], start, self.exclude) if said else []
        self.remembered += bool(picked)
        return picked

    def __call__(self, session_key: str, context: Sequence[dict[str, str]]) -> list[Remembered]:
        return [self.recall.remembered(e) for e in self.exchanges(session_key, context)]

    def context(self, session_key: str, context: Messages) -> Messages:
        """The context with the persona and memory blocks after its system prompt (unchanged without either)."""
        memories = self(session_key, context)
        if not context or context[0]["role"] != "system":
            return context
        return [{**context[0], "content": self.system(context[0]["content"], memories)}, *context[1:]]

    def system(self, system: str, memories: Sequence[Remembered]) -> str:
        return with_memory(with_persona(system, self.persona), memories)

    def counts(self) -> dict[str, int]:
        return {"samples": self.samples, "remembered": self.remembered, "unknown_sessions": self.unknown_sessions}
