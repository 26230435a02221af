"""The HTTP app: `build_app(settings, engine)` makes one (tests make their own; there is no global app).

    GET  /healthz                              model loaded, backend, queue depth (no key needed)
    GET  /v1/models                            the one model, for clients that list them
    POST /v1/chat/completions                  OpenAI chat completions, plain or streamed (SSE)
    POST /v1/avatar/reply                      native: {"friend", "message" | "messages"} -> {"bubbles", …}
                                               (with "stream": true, SSE: the bubbles so far, then the reply)
    GET  /v1/avatar/friends                    who the page offers: the busiest contacts, friends with history
    GET  /v1/avatar/friends/{friend}/history   what the server remembers of that friend
    DELETE …/history                           forget it
    POST /v1/avatar/corrections                {"friend", "better"}: the last reply was bad, `better` is what it
                                               should have said -> WORKSPACE/rlhf/ranked.jsonl (for RLHF)

Every error, ours or the framework's, leaves as {"error": {message, type, param, code}} with a
real status; bad input is never a 500. The gate in front of /v1 checks, in order: the API key
(401), the rate per key per minute (429 + Retry-After), requests in flight (429), body size (413).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wechat_avatar.config import API_KEY_ENV, AvatarConfig, ServeConfig
from wechat_avatar.dataset.window import Line
from wechat_avatar.errors import BackendError, UsageError
from wechat_avatar.generate import BUBBLE, bubbles
from wechat_avatar.rlhf.corrections import last_reply
from wechat_avatar.rlhf.corrections import record as record_correction
from wechat_avatar.serve import protocol as p
from wechat_avatar.serve.engine import Backend, Reply, Sampling
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.history import History
from wechat_avatar.workspace import Workspace

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip
JOINS = {"newline": "\n", "keep": BUBBLE, "segments": "\n"}


@dataclass(frozen=True)
class Settings:
    serve: ServeConfig
    state: Path  # the per-friend history's SQLite file
    friends: Friends = field(default_factory=lambda: Friends({}))
    ranked: Path | None = None  # where corrections go (the workspace's rlhf/ranked.jsonl); None: not taken

    @classmethod
    def of(cls, workspace: Workspace, cfg: AvatarConfig) -> Settings:
        return cls(cfg.serve, workspace.serve_state, Friends.of(workspace, cfg.dataset.pii_cues), workspace.ranked)


def check_settings(cfg: ServeConfig) -> None:
    """Refuse, before any model is loaded, to listen beyond this machine without an API key."""
    if not cfg.api_key and not is_loopback(cfg.host):
        raise UsageError(f"refusing to serve on {cfg.host} without an API key: anyone who can reach it could "
                         "talk as your avatar",
                         hint=f"pass --api-key KEY (or set {API_KEY_ENV}), or serve on 127.0.0.1")  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.type, self.code, self.param, self.headers = status, type_, code, param, headers

    def response(self) -> JSONResponse:
        body = p.error_json(str(self), self.type, self.code, self.param)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass
class Load:
    """What the gate counts (healthz reports it): requests in flight, and recent calls per caller."""

    in_flight: int = 0
    calls: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    swept: float = 0.0  # when callers silent for a minute were last forgotten

    def sweep(self, now: float) -> None:
        """Forget callers with no call in the last minute, at most once a minute: a server that met many
        addresses does not keep one queue per address forever."""
        if now - self.swept < 60:
            return
        self.swept = now
        for who in [who for who, calls in self.calls.items() if not calls or now - calls[-1] >= 60]:
            del self.calls[who]


class Gate:
    """ASGI middleware in front of /v1: key, rate, concurrency and body size, before any parsing."""

    def __init__(self, app: ASGIApp, cfg: ServeConfig, load: Load) -> None:
        self.app, self.cfg, self.load = app, cfg, load

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            who = self._authorise(headers, scope)
            self._count(who)
            if self.load.in_flight >= self.cfg.max_concurrent:
                busy = f"the server is busy ({self.load.in_flight} requests in flight); retry shortly"
                raise APIError(429, busy, "rate_limit_error", "too_many_concurrent_requests",
                               headers={"Retry-After": "1"})  # fmt: skip
            body = await self._body(headers, receive)
        except APIError as error:
            return await error.response()(scope, receive, send)
        if body is None:
            return None  # the client went away while sending
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        self.load.in_flight += 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.load.in_flight -= 1

    def _authorise(self, headers: dict[str, str], scope: dict[str, Any]) -> str:
        """The caller's identity for the rate limit: its key, else its address."""
        key = self.cfg.api_key
        if not key:
            return (scope.get("client") or ("local",))[0]
        scheme, _, token = headers.get("authorization", "").partition(" ")
        # constant-time: the comparison's duration says nothing about how much of a guess was right
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise APIError(401, "missing or wrong API key: send `Authorization: Bearer KEY`",
                           "authentication_error", "invalid_api_key")  # fmt: skip
        return token

    def _count(self, who: str) -> None:
        limit = self.cfg.requests_per_minute
        if not limit:
            return
        now = time.monotonic()
        self.load.sweep(now)
        calls = self.load.calls[who]
        while calls and now - calls[0] >= 60:
            calls.popleft()
        if len(calls) >= limit:
            wait = max(1, math.ceil(60 - (now - calls[0])))
            raise APIError(429, f"rate limit of {limit} requests per minute reached; retry in {wait} s",
                           "rate_limit_error", "rate_limit_exceeded", headers={"Retry-After": str(wait)})  # fmt: skip
        calls.append(now)

    async def _body(self, headers: dict[str, str], receive: Any) -> bytes | None:
        limit = self.cfg.max_body_bytes
        too_big = APIError(413, f"request body over {limit} bytes", code="body_too_large")
        if (length := headers.get("content-length", "")).isdigit() and int(length) > limit:
            raise too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def build_app(settings: Settings, engine: Backend) -> FastAPI:
    cfg = settings.serve
    history = History(settings.state, cfg.history_messages)
    locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one friend's turns run one after another

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        history.close()

    app = FastAPI(title="wechat-avatar", lifespan=lifespan, docs_url=None, redoc_url=None)
    _error_handlers(app)
    load = Load()

    def sampling(tokens: int | None, temperature: float | None, top_p: float | None, seed: int | None) -> Sampling:
        if tokens is not None and tokens > cfg.max_tokens_limit:
            raise APIError(422, f"max_tokens is {tokens}; this server allows at most {cfg.max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")  # fmt: skip
        return Sampling(tokens or cfg.max_new_tokens, cfg.temperature if temperature is None else temperature,
                        cfg.top_p if top_p is None else top_p, seed)  # fmt: skip

    def check_texts(texts: list[str], param: str) -> None:
        if len(texts) > cfg.max_messages:
            raise APIError(422, f"{len(texts)} messages; at most {cfg.max_messages} per request", param=param,
                           code="too_many_messages")  # fmt: skip
        if longest := max((len(t) for t in texts if len(t) > cfg.max_message_chars), default=0):
            raise APIError(422, f"a message of {longest} characters; at most {cfg.max_message_chars}", param=param,
                           code="message_too_long")  # fmt: skip

    async def generate(conversation: list[dict[str, str]], how: Sampling,
                       heard: Callable[[str], None] | None = None) -> Reply:  # fmt: skip
        return await asyncio.wrap_future(engine.submit(conversation, how, heard))

    @app.get("/healthz", response_model=None)
    async def healthz() -> p.Health | JSONResponse:
        problem = await asyncio.to_thread(engine.health)  # a remote backend (vLLM) is asked over HTTP
        health = p.Health(status="unavailable" if problem else "ok", model_loaded=problem is None,
                          model=engine.describe(), backend=engine.backend, queue_depth=engine.queue_depth,
                          in_flight=load.in_flight, batches=engine.batches, error=problem)  # fmt: skip
        if problem:
            return JSONResponse(health.model_dump(), status_code=503)
        return health

    @app.get("/v1/models")
    async def models() -> p.ModelList:
        return p.ModelList(data=[p.Model(id=cfg.model_name, created=STARTED)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: p.ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        check_texts([m.text for m in body.messages], "messages")
        how = sampling(body.tokens, body.temperature, body.top_p, body.seed)
        name = settings.friends.resolve(body.user or cfg.default_friend)[1]
        lines = openai_lines(body.messages, name, engine)
        if not any(not line.is_self for line in lines):
            raise APIError(422, "messages hold no user message to reply to", param="messages", code="no_user_message")
        conversation, made, cid = engine.persona.prompt(lines), p.now(), p.completion_id()
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(stream(conversation, how, body.stops, usage, cid, made),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
        future = engine.submit(conversation, how)
        parts, finish, usage_ = cut(await asyncio.wrap_future(future), body.stops, JOINS[cfg.bubble_mode])
        message = p.AssistantMessage(content=JOINS[cfg.bubble_mode].join(parts),
                                     segments=parts if cfg.bubble_mode == "segments" else None)  # fmt: skip
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

        join, loop, texts = JOINS[cfg.bubble_mode], asyncio.get_running_loop(), asyncio.Queue[str]()

        def heard(text: str) -> None:  # on the engine's thread
            loop.call_soon_threadsafe(texts.put_nowait, text)

        done = asyncio.wrap_future(engine.submit(conversation, how, None if stops else heard))
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
            body = p.error_json(f"generation failed: {type(error).__name__}: {error}", "server_error",
                                "generation_failed")  # fmt: skip
            yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
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

    @app.post("/v1/avatar/reply", response_model=None)
    async def avatar_reply(body: p.ReplyRequest) -> p.ReplyResponse | StreamingResponse:
        check_texts(body.said, "messages" if body.messages is not None else "message")
        how = sampling(body.max_tokens, body.temperature, body.top_p, body.seed)
        key, name = settings.friends.resolve(body.friend)
        if body.stream:
            return StreamingResponse(reply_events(key, name, body.said, how), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
        reply = await converse(key, name, body.said, how)
        return p.ReplyResponse(friend=key, name=name, bubbles=reply.bubbles, usage=usage_of(reply),
                               finish_reason=reply.finish_reason)  # fmt: skip

    async def converse(key: str, name: str, texts: list[str], how: Sampling,
                       heard: Callable[[str], None] | None = None) -> Reply:  # fmt: skip
        """One turn of a friend's conversation: the prompt from the kept history, the reply, both saved."""
        persona = engine.persona
        async with locks[key]:
            said = [persona.line(False, name, text) for text in texts]
            reply = await generate(persona.prompt([*history.lines(key), *said]), how, heard)
            history.add(key, [*said, *(persona.line(True, persona.name, b) for b in reply.bubbles)])
        return reply

    turns: set[asyncio.Future[Reply]] = set()  # streamed turns still generating (held so none is collected)

    async def reply_events(key: str, name: str, texts: list[str], how: Sampling) -> AsyncIterator[str]:
        """The bubbles so far as the batch decodes, the whole reply with usage, [DONE]; an error as an error
        event then [DONE]. The turn runs as a task of its own: a friend who leaves mid-reply (a reload)
        still finds it in the history, saved as a plain request saves it."""
        loop, heard = asyncio.get_running_loop(), asyncio.Queue[str]()

        def hear(text: str) -> None:  # on the engine's thread
            loop.call_soon_threadsafe(heard.put_nowait, text)

        def finished(t: asyncio.Future[Reply]) -> None:
            turns.discard(t)
            if not t.cancelled():
                t.exception()  # retrieved: a failure after the client left is no "never retrieved" warning

        turn = asyncio.ensure_future(converse(key, name, texts, how, hear))
        turns.add(turn)
        turn.add_done_callback(finished)
        sent: list[str] = []
        async for raw in newest(heard, turn):
            if (now := bubbles(shown(raw, BUBBLE))) and now != sent:
                sent = now
                yield f"data: {p.ReplySoFar(bubbles=now).model_dump_json()}\n\n"
        try:
            reply = turn.result()
        except Exception as error:  # headers are sent: the error travels as an event
            body = p.error_json(f"generation failed: {type(error).__name__}: {error}", "server_error",
                                "generation_failed")  # fmt: skip
            yield f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
            return
        done = p.ReplyResponse(friend=key, name=name, bubbles=reply.bubbles, usage=usage_of(reply),
                               finish_reason=reply.finish_reason)  # fmt: skip
        yield f"data: {done.model_dump_json()}\n\n"
        yield "data: [DONE]\n\n"

    @app.get("/v1/avatar/friends")
    async def list_friends() -> p.FriendList:
        listed = settings.friends.listed(history.friends())
        return p.FriendList(avatar=engine.persona.name, friends=[p.Friend(**f._asdict()) for f in listed])

    @app.get("/v1/avatar/friends/{friend}/history")
    async def read_history(friend: str) -> p.HistoryResponse:
        key, name = settings.friends.resolve(friend)
        kept = [p.HistoryMessage(role="avatar" if line.is_self else "friend", name=line.name, text=line.text,
                                 ts_ms=line.ts_ms) for line in history.lines(key)]  # fmt: skip
        return p.HistoryResponse(friend=key, name=name, messages=kept)

    @app.delete("/v1/avatar/friends/{friend}/history")
    async def clear_history(friend: str) -> p.Cleared:
        key, _ = settings.friends.resolve(friend)
        async with locks[key]:
            return p.Cleared(friend=key, deleted=history.clear(key))

    @app.post("/v1/avatar/corrections")
    async def correct(body: p.CorrectionRequest) -> p.CorrectionResponse:
        """Serve holds each friend's history, so it knows the context the reply answered; web only forwards."""
        if settings.ranked is None:
            raise APIError(404, "this server takes no corrections", code="corrections_off")
        key, _ = settings.friends.resolve(body.friend)
        async with locks[key]:
            before, said = last_reply(history.lines(key))
        if not said:
            raise APIError(409, "there is no reply to correct yet: say something first", code="nothing_to_correct")
        reply = BUBBLE.join(line.text for line in said)
        persona = engine.persona
        try:
            made = await asyncio.to_thread(record_correction, settings.ranked, persona.prompt(before), reply,
                                           body.better, persona.name, "web")  # fmt: skip
        except UsageError as error:
            raise APIError(422, str(error), param="better", code="bad_correction") from None
        return p.CorrectionResponse(friend=key, context=made.source, said=reply, better=made.responses[0])

    app.add_middleware(Gate, cfg=cfg, load=load)
    return app


STARTED = p.now()


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


def cut(reply: Reply, stops: list[str], join: str) -> tuple[list[str], str, p.Usage]:
    """The reply's bubbles cut at the first stop string a client asked for (in the text it would see,
    bubbles joined by `join`), its finish reason and usage."""
    text, finish = join.join(reply.bubbles), reply.finish_reason
    for stop in stops:
        if (at := text.find(stop)) >= 0:
            text, finish = text[:at], "stop"
    parts = [b.strip() for b in text.split(join) if b.strip()] if stops else reply.bubbles
    return parts, finish, usage_of(reply)


def usage_of(reply: Reply) -> p.Usage:
    return p.Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                   total_tokens=reply.prompt_tokens + reply.completion_tokens)  # fmt: skip


def _error_handlers(app: FastAPI) -> None:
    """Every failure leaves in the one shape; FastAPI's own 422s and 404s included."""

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(BackendError)
    async def backend_error(_: Request, error: BackendError) -> JSONResponse:
        """vLLM down (503, retry later) or failing a request (502): the client learns which, as JSON."""
        down = error.status == 503
        return APIError(error.status, str(error), "server_error", "backend_unreachable" if down else "backend_error",
                        headers={"Retry-After": "5"} if down else None).response()  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first.get("type") == "json_invalid":
            return APIError(400, f"the body is not valid JSON: {first.get('msg', '')}", code="invalid_json").response()
        loc = [str(part) for part in first.get("loc", ()) if part != "body"]
        if not loc and first.get("type") == "missing":
            return APIError(400, "the body is empty: send a JSON object", code="empty_body").response()
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        param = ".".join(loc) or None
        return APIError(422, f"{param}: {message}" if param else message, code=str(first.get("type")),
                        param=param).response()  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return APIError(error.status_code, str(error.detail), kind, headers=error.headers).response()

    @app.exception_handler(Exception)
    async def internal(_: Request, error: Exception) -> JSONResponse:
        return APIError(500, f"internal error: {type(error).__name__}", "server_error", "internal_error").response()
