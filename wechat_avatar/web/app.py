"""The web server: one static page, and /api routes it forwards to the serve API with the API key.

    GET    /                                 the chat page (static/index.html; page.js and page.css beside it)
    GET    /api/friends                      -> GET  {api}/v1/avatar/friends
    GET    /api/friends/{friend}/history     -> GET  {api}/v1/avatar/friends/{friend}/history
    POST   /api/reply {"friend", "message"}  -> POST {api}/v1/avatar/reply, "stream": true (SSE passed through)
    POST   /api/correction {"friend", "better"} -> POST {api}/v1/avatar/corrections (the last reply, thumbs down)

Only what the page needs is forwarded, and the page cannot set sampling or lengths. Whatever goes
wrong upstream comes back as {"error": {"message", "code"}} whose message is the sentence the page
shows: the API down (502), too slow (504), the web server's key wrong (502), too many requests
(429 with Retry-After). Off loopback the page asks for a password (HTTP Basic; the user name is
ignored), as `serve` asks for an API key off loopback.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from wechat_avatar.config import API_KEY_ENV
from wechat_avatar.errors import UsageError
from wechat_avatar.serve.app import is_loopback

STATIC = Path(__file__).parent / "static"
PASSWORD_ENV = "WECHAT_AVATAR_WEB_PASSWORD"  # where `web` reads the page password when --password is not given
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class WebSettings:
    api: str = "http://127.0.0.1:8000"  # the serve API's base URL (without /v1)
    api_key: str | None = None  # sent upstream as `Authorization: Bearer KEY`; never to the browser
    host: str = "127.0.0.1"
    port: int = 8501
    password: str | None = None  # the page's password; required off loopback
    timeout_s: float = 60.0  # the longest wait for the API's next byte before the page is told it is slow


def check_settings(s: WebSettings) -> None:
    """Refuse, before listening, a page beyond this machine without a password, or an API URL that is none."""
    if not s.password and not is_loopback(s.host):
        raise UsageError(f"refusing to serve the chat page on {s.host} without a page password: anyone who can "
                         "reach it could talk as your avatar",
                         hint=f"pass --password P (or set {PASSWORD_ENV}), or serve on 127.0.0.1")  # fmt: skip
    url = urlsplit(s.api)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UsageError(f"--api {s.api!r} is not an http(s) URL", hint="pass the serve API's base URL, e.g. "
                         "--api http://127.0.0.1:8000")  # fmt: skip


class PageMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    friend: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1)


class PageCorrection(BaseModel):
    model_config = ConfigDict(extra="ignore")

    friend: str = Field(min_length=1, max_length=200)
    better: str = Field(min_length=1, max_length=4000)


class Trouble(Exception):
    """Something the page must be told, in the words it shows."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers

    def json(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.json(), status_code=self.status, headers=self.headers)


def trouble_of(error: httpx2.HTTPError, s: WebSettings) -> Trouble:
    """A failed call to the API, as the page says it."""
    if isinstance(error, httpx2.TimeoutException):
        return Trouble(504, f"the avatar is too slow: no answer within {s.timeout_s:g} s; try again in a moment",
                       "api_timeout")  # fmt: skip
    return Trouble(502, "the avatar's API is down: ask whoever runs it to start `wechat-avatar serve`", "api_down")


def refusal(status: int, headers: httpx2.Headers, body: bytes) -> Trouble:
    """The API's own error response, as the page says it."""
    if status == 401:
        return Trouble(502, f"the web server's API key is wrong: whoever runs it should check --api-key (or "
                       f"{API_KEY_ENV})", "api_key_wrong")  # fmt: skip
    if status == 429:
        wait = headers.get("retry-after", "")
        when = f"retry in {wait} s" if wait.isdigit() else "retry shortly"
        return Trouble(429, f"too many requests, {when}", "too_many_requests", {"Retry-After": wait or "1"})
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"the avatar's API answered {status}"
    return Trouble(status, message, "api_refused")


class Password:
    """ASGI middleware: HTTP Basic in front of everything, the password compared in constant time."""

    def __init__(self, app: Callable[..., Awaitable[None]], password: str) -> None:
        self.app, self.password = app, password.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._allowed(dict(scope["headers"]).get(b"authorization", b"")):
            deny = Response("this chat page needs its password", 401, media_type="text/plain; charset=utf-8",
                            headers={"WWW-Authenticate": 'Basic realm="wechat-avatar", charset="UTF-8"'})  # fmt: skip
            return await deny(scope, receive, send)
        return await self.app(scope, receive, send)

    def _allowed(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        try:
            given = base64.b64decode(token.strip(), validate=True).partition(b":")[2]
        except ValueError:
            return False
        return scheme.lower() == b"basic" and hmac.compare_digest(given, self.password)


def build_app(s: WebSettings) -> FastAPI:
    headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
    timeout = httpx2.Timeout(s.timeout_s, connect=min(s.timeout_s, 5.0))
    client = httpx2.AsyncClient(base_url=s.api.rstrip("/"), headers=headers, timeout=timeout, trust_env=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(title="wechat-avatar web", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Trouble)
    async def trouble(_: Request, error: Trouble) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return Trouble(422, "send a friend and a message", "invalid_request").response()

    async def forward(method: str, path: str, body: dict[str, Any] | None = None) -> httpx2.Response:
        """The API's response to one call, opened as a stream; a failure or refusal raises Trouble."""
        try:
            response = await client.send(client.build_request(method, path, json=body), stream=True)
        except httpx2.HTTPError as error:
            raise trouble_of(error, s) from None
        if response.status_code >= 400:
            try:
                raw = await response.aread()
            except httpx2.HTTPError as error:
                raise trouble_of(error, s) from None
            finally:
                await response.aclose()
            raise refusal(response.status_code, response.headers, raw)
        return response

    async def relay(method: str, path: str, body: dict[str, Any] | None = None) -> JSONResponse:
        response = await forward(method, path, body)
        try:
            data = json.loads(await response.aread())
        except httpx2.HTTPError as error:
            raise trouble_of(error, s) from None
        finally:
            await response.aclose()
        return JSONResponse(data)

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/friends")
    async def friends() -> JSONResponse:
        return await relay("GET", "/v1/avatar/friends")

    @app.get("/api/friends/{friend}/history")
    async def history(friend: str) -> JSONResponse:
        return await relay("GET", f"/v1/avatar/friends/{quote(friend, safe='')}/history")

    @app.post("/api/reply")
    async def reply(body: PageMessage) -> StreamingResponse:
        response = await forward("POST", "/v1/avatar/reply", {"friend": body.friend, "message": body.message,
                                                              "stream": True})  # fmt: skip
        return StreamingResponse(events(response), media_type="text/event-stream", headers=SSE_HEADERS)

    @app.post("/api/correction")
    async def correction(body: PageCorrection) -> JSONResponse:
        return await relay("POST", "/v1/avatar/corrections", {"friend": body.friend, "better": body.better})

    async def events(response: httpx2.Response) -> AsyncIterator[str]:
        """The API's events one by one as they come; if it stops answering, one error event and [DONE]."""
        try:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    yield f"{line}\n\n"
        except httpx2.HTTPError as error:
            yield f"data: {json.dumps(trouble_of(error, s).json(), ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            await response.aclose()

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if s.password:
        app.add_middleware(Password, password=s.password)
    return app
