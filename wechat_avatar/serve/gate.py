"""The HTTP edge: what the gate refuses before a request is parsed (key 401, rate 429 + Retry-After,
requests in flight 429, body size 413), and every failure in the one OpenAI-style shape,
{"error": {message, type, param, code}} with a real status: bad input is never a 500."""

from __future__ import annotations

import hmac
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wechat_avatar.config import ServeConfig
from wechat_avatar.errors import BackendError
from wechat_avatar.serve import protocol as p

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[..., Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


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


def error_handlers(app: FastAPI) -> None:
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
