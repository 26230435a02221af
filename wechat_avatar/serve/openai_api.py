"""OpenAI's API: `GET /v1/models` and `POST /v1/chat/completions`, plain or streamed (SSE), for the bot
frameworks. The client sends the whole conversation; the server keeps none of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from wechat_avatar.dataset.window import Line
from wechat_avatar.generate import BUBBLE
from wechat_avatar.serve import protocol as p
from wechat_avatar.serve.engine import Backend, Reply, Sampling
from wechat_avatar.serve.gate import APIError
from wechat_avatar.serve.replies import SSE_HEADERS, Replies, failed, listener, newest, shown, usage_of

JOINS = {"newline": "\n", "keep": BUBBLE, "segments": "\n"}
STARTED = p.now()


def openai_router(replies: Replies) -> APIRouter:
    router, cfg, engine = APIRouter(), replies.cfg, replies.engine
    join = JOINS[cfg.bubble_mode]

    @router.get("/v1/models")
    async def models() -> p.ModelList:
        return p.ModelList(data=[p.Model(id=cfg.model_name, created=STARTED)])

    @router.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: p.ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        replies.check_texts([m.text for m in body.messages], "messages")
        how = replies.sampling(body.tokens, body.temperature, body.top_p, body.seed)
        name = replies.friends.resolve(body.user or cfg.default_friend)[1]
        lines = openai_lines(body.messages, name, engine)
        if not any(not line.is_self for line in lines):
            raise APIError(422, "messages hold no user message to reply to", param="messages", code="no_user_message")
        conversation, made, cid = engine.persona.prompt(lines), p.now(), p.completion_id()
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(stream(conversation, how, body.stops, usage, cid, made),
                                     media_type="text/event-stream", headers=SSE_HEADERS)  # fmt: skip
        future = engine.submit(conversation, how)
        parts, finish, usage_ = cut(await asyncio.wrap_future(future), body.stops, join)
        segments = parts if cfg.bubble_mode == "segments" else None
        message = p.AssistantMessage(content=join.join(parts), segments=segments)
        done = p.ChatCompletion(id=cid, created=made, model=cfg.model_name,
                                choices=[p.Choice(message=message, finish_reason=finish)], usage=usage_)  # fmt: skip
        return JSONResponse(done.model_dump(exclude_none=True))  # `segments` only in segments mode

    async def stream(conversation: list[dict[str, str]], how: Sampling, stops: list[str], include_usage: bool,
                     cid: str, made: int) -> AsyncIterator[str]:  # fmt: skip
        """Role chunk, content deltas as the batch decodes, finish_reason, usage if asked, [DONE].

        With stop strings the text is cut only once it is whole, so it comes in one delta per bubble."""

        def chunk(choices: list[p.ChunkChoice], usage: p.Usage | None = None) -> str:
            data = p.ChatCompletionChunk(id=cid, created=made, model=cfg.model_name, choices=choices, usage=usage)
            return f"data: {data.model_dump_json(exclude_none=True)}\n\n"

        texts = asyncio.Queue[str]()
        done = asyncio.wrap_future(engine.submit(conversation, how, None if stops else listener(texts)))
        try:
            yield chunk([p.ChunkChoice(delta=p.Delta(role="assistant", content=""))])
            emitted = ""
            async for raw in newest(texts, done):
                if (now := shown(raw, join)).startswith(emitted) and len(now) > len(emitted):
                    yield chunk([p.ChunkChoice(delta=p.Delta(content=now[len(emitted) :]))])
                    emitted = now
        except (asyncio.CancelledError, GeneratorExit):  # the client left: a reply still queued is dropped
            done.cancel()
            raise
        try:
            parts, finish, usage = cut(done.result(), stops, join)
        except Exception as error:  # headers are sent: the error travels as a chunk
            yield failed(error)
            return
        whole = join.join(parts)
        # what is left: per bubble when nothing streamed (stop strings), else the tail of the whole text
        rest = [whole[len(emitted) :] if whole.startswith(emitted) else ""] if emitted else [
            (join if i else "") + b for i, b in enumerate(parts)]  # fmt: skip
        for text in filter(None, rest):
            yield chunk([p.ChunkChoice(delta=p.Delta(content=text))])
        yield chunk([p.ChunkChoice(delta=p.Delta(), finish_reason=finish)])
        if include_usage:
            yield chunk([], usage)
        yield "data: [DONE]\n\n"

    return router


def openai_lines(messages: list[p.ChatMessage], friend: str, engine: Backend) -> list[Line]:
    """A client's conversation as dataset lines: user turns are the friend's, assistant turns the
    avatar's bubbles (split on <s> and line breaks, as this server joins them). System prompts and
    tool turns are left out: the persona's own system prompt is what the model learned with."""
    persona, lines = engine.persona, []
    for m in messages:
        if m.role == "user" and m.text.strip():
            lines.append(persona.line(False, m.name or friend, m.text))
        elif m.role == "assistant":
            parts = [b.strip() for b in m.text.replace(BUBBLE, "\n").splitlines() if b.strip()]
            lines += [persona.line(True, persona.name, b) for b in parts]
    return lines


def cut(reply: Reply, stops: list[str], join: str) -> tuple[list[str], str, p.Usage]:
    """The reply's bubbles cut at the first stop string a client asked for (in the text it would see,
    bubbles joined by `join`), its finish reason and usage."""
    text, finish = join.join(reply.bubbles), reply.finish_reason
    for stop in stops:
        if (at := text.find(stop)) >= 0:
            text, finish = text[:at], "stop"
    parts = [b.strip() for b in text.split(join) if b.strip()] if stops else reply.bubbles
    return parts, finish, usage_of(reply)
