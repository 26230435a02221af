"""What to remember for a reply: the top-k of your past exchanges, within a token budget.

    recall(friend="胡三行", heard="你老家是哪儿的呀", before_ms=<the session's start, or now>)
    -> [Remembered("2023-05-02", "胡三行", "你是哪里人来着", "绍兴的<s>黄酒那个绍兴"), …]

Ranking: full-text matches (BM25 over jieba words) older than `before_ms` — never the
conversation's own session, never its future — each weighted by age (half as much every
`recency_days`) and the same friend's by `same_friend_boost`, so the friend's own memories come
first unless another's match is much closer (a strict friend-first order let a friend's chance
`猫` outrank the very exchange where you named your cat to someone else), all in one SQL pass (scoring
every matching exchange is what a lookup costs). The query asks only for its rarest words while they
match at most `max_postings` exchanges: common words (吃, 好) cost time at scale and rank next to
nothing. Memories are taken in that order while they fit `token_budget` (tokens estimated as
characters) and `top_k`.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from wechat_avatar.config import AvatarConfig, MemoryConfig
from wechat_avatar.dataset.prompt import Remembered, memory_line
from wechat_avatar.errors import UsageError
from wechat_avatar.memory import words
from wechat_avatar.memory.exchanges import Exchange
from wechat_avatar.memory.index import MemoryIndex
from wechat_avatar.workspace import Workspace

DAY_MS = 86_400_000


class Recall:
    def __init__(self, index: MemoryIndex, cfg: MemoryConfig, timezone: str = "Asia/Shanghai") -> None:
        self.index, self.cfg, self.tz = index, cfg, ZoneInfo(timezone)

    @classmethod
    def open(cls, workspace: Workspace, cfg: AvatarConfig) -> Recall:
        """The built index; a clear error where there is none, or it holds nothing to remember."""
        path = workspace.memory_index
        hint = f"run `wechat-avatar memory build --workspace {workspace}`, or set memory.enabled: false"
        if not path.is_file():
            raise UsageError(f"memory is on but {path} does not exist", hint=hint)
        index = MemoryIndex(path)
        if index.count() == 0:
            index.close()
            raise UsageError(
                f"memory is on but {path} holds no exchanges of yours (a reply of yours to someone's message)",
                hint="ingest more of your history and run `wechat-avatar memory build` again, "
                "or set memory.enabled: false",
            )
        return cls(index, cfg.memory, cfg.ingest.timezone)

    def close(self) -> None:
        self.index.close()

    def __call__(self, friend: str, heard: str, before_ms: int | None = None) -> list[Remembered]:
        return [self.remembered(e) for e in self.pick(friend, heard, before_ms)]

    def pick(
        self, friend: str, heard: str, before_ms: int | None = None, exclude: frozenset[int] = frozenset()
    ) -> list[Exchange]:
        """The exchanges `__call__` shows, with their times (what tests of the cutoff look at); never those
        whose ids are in `exclude` (training leaves out the held-out sessions' exchanges)."""
        before = int(time.time() * 1000) if before_ms is None else before_ms
        c = self.cfg
        q = words.or_query(self.index.rarest(words.terms(heard), c.max_postings))
        half_life = c.recency_days * DAY_MS
        found = self.index.ranked(q, before, friend, c.same_friend_boost, half_life, c.candidates + len(exclude))
        ranked = [m for m in found if m.exchange.id not in exclude]
        out: list[Exchange] = []
        budget = c.token_budget
        for match in ranked:
            if len(out) >= c.top_k:
                break
            cost = len(memory_line(self.remembered(match.exchange))) + 1  # its line and the newline before it
            if cost <= budget:
                out.append(match.exchange)
                budget -= cost
        return out

    def remembered(self, e: Exchange) -> Remembered:
        day = datetime.fromtimestamp(e.ts_ms / 1000, self.tz).strftime("%Y-%m-%d")
        return Remembered(day, e.friend, e.said, e.reply)
