"""What every channel shares: who may be answered, the kill switch, the log, serve, pacing, de-dup.

A channel turns a platform's message into `Core.answer(user, text)` and sends the bubbles it gets back
with `deliver`, within its own limits. The model is reached only through serve's native API
(POST /v1/avatar/reply), so the channel process never loads a model.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx2

from wechat_avatar.config import ChannelsConfig
from wechat_avatar.errors import AvatarError, ConfigError
from wechat_avatar.workspace import Workspace

Verdict = Literal["reply", "draft", "blocked", "stopped"]


class ChannelError(AvatarError):
    """The platform refused our credentials or a request (its errcode and errmsg are in the message)."""

    exit_code = 2


@dataclass(frozen=True)
class Guard:
    """Allowlist, draft-only mode and kill switch, asked before every model call and every send."""

    allow: frozenset[str]
    draft_only: bool
    stop: Path  # while this file exists nothing is answered
    always: frozenset[str] = frozenset()  # answered without being listed (ClawBot's owner)

    def stopped(self) -> bool:
        return self.stop.exists()

    def verdict(self, user: str) -> Verdict:
        if self.stopped():
            return "stopped"
        if user not in self.always and "*" not in self.allow and user not in self.allow:
            return "blocked"
        return "draft" if self.draft_only else "reply"

    def describe(self) -> str:
        if "*" in self.allow:
            who = "everyone who writes"
        elif self.allow:
            who = f"{len(self.allow)} allowed user(s): {', '.join(sorted(self.allow))}"
        else:
            who = "nobody yet: add user ids to channels.allow in avatar.yaml (their ids show in the log)"
        parts = [f"answering {who}"]
        if self.draft_only:
            parts.append("draft-only: replies are logged, never sent")
        if self.stopped():
            parts.append(f"kill switch ON ({self.stop}): nothing is answered until `wechat-avatar connect --resume`")
        return "; ".join(parts)


class Journal:
    """The local log of every message in and out: one JSON line each (kind: in, out, draft, held, error)."""

    def __init__(self, path: Path, channel: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.channel = path, channel

    def write(self, kind: str, user: str, text: str | list[str], **extra: Any) -> None:
        line = {"ts": round(time.time(), 3), "channel": self.channel, "kind": kind, "user": user, "text": text, **extra}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


class Avatar:
    """serve's native API over HTTP: one friend's message in, the avatar's bubbles out."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.client = httpx2.AsyncClient(base_url=self.url, headers=headers, timeout=timeout_s)

    async def ready(self) -> None:
        """Fail at start, in one line, when serve is not there or refuses our key."""
        try:
            health = await self.client.get("/healthz")
            models = await self.client.get("/v1/models")
        except httpx2.HTTPError as error:
            raise ConfigError(
                f"serve is not reachable at {self.url}: {type(error).__name__}",
                hint="start `wechat-avatar serve` first, or set channels.serve_url",
            ) from None
        if models.status_code == 401:
            raise ConfigError(f"serve at {self.url} refused the API key",
                              hint="set channels.api_key (or WECHAT_AVATAR_API_KEY) to serve's key")  # fmt: skip
        if health.status_code != 200:
            raise ConfigError(f"serve at {self.url} is not ready (healthz {health.status_code})")

    async def reply(self, friend: str, text: str) -> list[str]:
        response = await self.client.post("/v1/avatar/reply", json={"friend": friend, "message": text})
        if response.status_code != 200:
            raise ChannelError(f"serve answered {response.status_code}: {response.text[:200]}")
        try:
            return [str(b) for b in response.json()["bubbles"]]
        except (ValueError, KeyError, TypeError):
            raise ChannelError(f"serve's answer has no bubbles: {response.text[:200]}") from None

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(frozen=True)
class Pace:
    """Typing-like pauses between bubbles: per character, clamped, with jitter."""

    min_s: float
    per_char_s: float
    max_s: float
    jitter_s: float

    def delay(self, text: str) -> float:
        return max(self.min_s, min(self.max_s, self.per_char_s * len(text))) + random.uniform(0, self.jitter_s)


def fit(bubbles: list[str], most: int, max_bytes: int | None = None) -> list[str]:
    """Bubbles within a channel's limits: stripped, empties dropped, the overflow merged into the last
    allowed one, each cut to `max_bytes` of UTF-8 (at a character boundary)."""
    kept = [b.strip() for b in bubbles if b.strip()]
    if len(kept) > most:
        kept = [*kept[: most - 1], "\n".join(kept[most - 1 :])]
    if max_bytes:
        kept = [b.encode()[:max_bytes].decode(errors="ignore") for b in kept]
    return kept


class Sent(NamedTuple):
    sent: int
    stopped: bool  # the kill switch came on partway


async def deliver(bubbles: list[str], send: Callable[[str], Awaitable[None]], pace: Pace, guard: Guard,
                  pause_first: bool = False) -> Sent:  # fmt: skip
    """Send the bubbles in order, a typing pause before each but the first (or before each, when
    something was already said, e.g. a passive reply); the kill switch is asked before every one."""
    for i, text in enumerate(bubbles):
        if i or pause_first:
            await asyncio.sleep(pace.delay(text))
        if guard.stopped():
            return Sent(i, True)
        await send(text)
    return Sent(len(bubbles), False)


class Seen:
    """Recent message ids -> what became of them (a bounded map): platform retries find their first try."""

    def __init__(self, most: int = 10_000) -> None:
        self.most, self.items = most, OrderedDict[str, Any]()

    def get(self, key: str) -> Any:
        return self.items.get(key)

    def put(self, key: str, value: Any) -> None:
        self.items[key] = value
        while len(self.items) > self.most:
            self.items.popitem(last=False)


class Answer(NamedTuple):
    verdict: Verdict
    bubbles: list[str]


class Core:
    """One channel's guard, log, serve client and pacing."""

    def __init__(self, workspace: Workspace, cfg: ChannelsConfig, channel: str,
                 always: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.cfg, self.channel = cfg, channel
        self.guard = Guard(frozenset(cfg.allow), cfg.draft_only, workspace.channel_stop, always)
        self.journal = Journal(workspace.channel_log, channel)
        self.avatar = Avatar(cfg.serve_url, cfg.api_key, cfg.timeout_s)
        self.pace = Pace(cfg.pace_min_s, cfg.pace_per_char_s, cfg.pace_max_s, cfg.pace_jitter_s)

    def friend(self, user: str) -> str:
        return self.cfg.names.get(user) or f"{self.channel}:{user}"

    async def answer(self, user: str, text: str, friend: str | None = None) -> Answer:
        """Log the message; unless held back, ask serve; drafts are logged instead of returned."""
        verdict = self.guard.verdict(user)
        self.journal.write("in", user, text, verdict=verdict)
        if verdict in ("blocked", "stopped"):
            return Answer(verdict, [])
        try:
            bubbles = await self.avatar.reply(friend or self.friend(user), text)
        except (httpx2.HTTPError, ChannelError) as error:
            self.journal.write("error", user, text, error=f"{type(error).__name__}: {error}")
            return Answer(verdict, [])
        if verdict == "draft":
            self.journal.write("draft", user, bubbles)
            return Answer(verdict, [])
        return Answer(verdict, bubbles)

    def other(self, user: str, kind: str) -> Verdict:
        """A message that is not text (an image, voice …): logged and judged, no model call."""
        verdict = self.guard.verdict(user)
        self.journal.write("in", user, f"[{kind}]", verdict=verdict)
        return verdict
