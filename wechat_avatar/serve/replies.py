"""What both APIs share: the server's limits on a request, one friend's turn against the kept history,
and how a reply still being decoded is shown."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from wechat_avatar.config import ServeConfig
from wechat_avatar.generate import BUBBLE
from wechat_avatar.serve import protocol as p
from wechat_avatar.serve.engine import Backend, Reply, Sampling
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.gate import APIError
from wechat_avatar.serve.history import History

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Replies:
    """One app's reply desk: settings, the engine, the per-friend history and its locks, where corrections go."""

    def __init__(self, cfg: ServeConfig, engine: Backend, history: History, friends: Friends,
                 ranked: Path | None = None) -> None:  # fmt: skip
        self.cfg, self.engine, self.history, self.friends = cfg, engine, history, friends
        self.ranked = ranked  # where the owner's corrections go (rlhf/ranked.jsonl); None: none are taken
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one friend's turns run one at a time

    def sampling(self, tokens: int | None, temperature: float | None, top_p: float | None,
                 seed: int | None) -> Sampling:  # fmt: skip
        cfg = self.cfg
        if tokens is not None and tokens > cfg.max_tokens_limit:
            raise APIError(422, f"max_tokens is {tokens}; this server allows at most {cfg.max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")  # fmt: skip
        return Sampling(tokens or cfg.max_new_tokens, cfg.temperature if temperature is None else temperature,
                        cfg.top_p if top_p is None else top_p, seed)  # fmt: skip

    def check_texts(self, texts: list[str], param: str) -> None:
        cfg = self.cfg
        if len(texts) > cfg.max_messages:
            raise APIError(422, f"{len(texts)} messages; at most {cfg.max_messages} per request", param=param,
                           code="too_many_messages")  # fmt: skip
        if longest := max((len(t) for t in texts if len(t) > cfg.max_message_chars), default=0):
            raise APIError(422, f"a message of {longest} characters; at most {cfg.max_message_chars}", param=param,
                           code="message_too_long")  # fmt: skip

    async def converse(self, key: str, name: str, texts: list[str], how: Sampling,
                       heard: Callable[[str], None] | None = None) -> Reply:  # fmt: skip
        """One turn of a friend's conversation: the prompt from the kept history, the reply, both saved."""
        persona, history = self.engine.persona, self.history
        async with self.locks[key]:
            said = [persona.line(False, name, text) for text in texts]
            conversation = persona.prompt([*history.lines(key), *said])
            reply = await asyncio.wrap_future(self.engine.submit(conversation, how, heard))
            history.add(key, [*said, *(persona.line(True, persona.name, b) for b in reply.bubbles)])
        return reply


def listener(queue: asyncio.Queue[str]) -> Callable[[str], None]:
    """An engine's on_text callback (called on its thread) that puts each text on `queue` in this loop."""
    loop = asyncio.get_running_loop()
    return lambda text: loop.call_soon_threadsafe(queue.put_nowait, text)


async def newest(texts: asyncio.Queue[str], done: asyncio.Future[Any]) -> AsyncIterator[str]:
    """The newest text put on `texts` each time some arrives (older ones are skipped), until `done` is."""
    while not done.done():
        step = asyncio.ensure_future(texts.get())
        try:
            await asyncio.wait({step, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            step.cancel()
        if step.done() and not step.cancelled():
            raw = step.result()
            while not texts.empty():
                raw = texts.get_nowait()
            yield raw


def shown(raw: str, join: str) -> str:
    """What a client may see of a reply still being decoded: its bubbles joined as they will be at
    the end, holding back what may yet change (a half-written <s>, a half-decoded character,
    whitespace that stripping may remove)."""
    raw = raw.rstrip("\ufffd")
    for k in (2, 1):
        if raw.endswith(BUBBLE[:k]):
            raw = raw[:-k]
            break
    return join.join(b.strip() for b in raw.split(BUBBLE) if b.strip())


def usage_of(reply: Reply) -> p.Usage:
    return p.Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                   total_tokens=reply.prompt_tokens + reply.completion_tokens)  # fmt: skip


def failed(error: Exception) -> str:
    """A reply that failed after the stream's headers were sent: an error event, then [DONE]."""
    body = p.error_json(f"generation failed: {type(error).__name__}: {error}", "server_error", "generation_failed")
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\ndata: [DONE]\n\n"
