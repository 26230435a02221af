"""The HTTP app: `build_app(settings, engine)` makes one (tests make their own; there is no global app).

    GET  /healthz                              model loaded, backend, queue depth (no key needed)
    GET  /v1/models, POST /v1/chat/completions OpenAI's API (serve/openai_api.py)
    POST /v1/avatar/reply, /v1/avatar/friends… our native API with per-friend history (serve/avatar_api.py),
    POST /v1/avatar/corrections                and the owner's corrections of it, kept for RLHF

In front of /v1 the gate (serve/gate.py) checks, in order: the API key (401), the rate per key per
minute (429 + Retry-After), requests in flight (429), body size (413). Every error, ours or the
framework's, leaves as {"error": {message, type, param, code}} with a real status.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from wechat_avatar.config import API_KEY_ENV, AvatarConfig, ServeConfig
from wechat_avatar.errors import UsageError
from wechat_avatar.serve import protocol as p
from wechat_avatar.serve.avatar_api import avatar_router
from wechat_avatar.serve.engine import Backend
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.gate import Gate, Load, error_handlers
from wechat_avatar.serve.history import History
from wechat_avatar.serve.openai_api import openai_router
from wechat_avatar.serve.replies import Replies
from wechat_avatar.workspace import Workspace


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


def build_app(settings: Settings, engine: Backend) -> FastAPI:
    cfg = settings.serve
    history = History(settings.state, cfg.history_messages)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        history.close()

    app = FastAPI(title="wechat-avatar", lifespan=lifespan, docs_url=None, redoc_url=None)
    error_handlers(app)
    load = Load()

    @app.get("/healthz", response_model=None)
    async def healthz() -> p.Health | JSONResponse:
        problem = await asyncio.to_thread(engine.health)  # a remote backend (vLLM) is asked over HTTP
        health = p.Health(status="unavailable" if problem else "ok", model_loaded=problem is None,
                          model=engine.describe(), backend=engine.backend, queue_depth=engine.queue_depth,
                          in_flight=load.in_flight, batches=engine.batches, error=problem)  # fmt: skip
        if problem:
            return JSONResponse(health.model_dump(), status_code=503)
        return health

    replies = Replies(cfg, engine, history, settings.friends, settings.ranked)
    app.include_router(openai_router(replies))
    app.include_router(avatar_router(replies))
    app.add_middleware(Gate, cfg=cfg, load=load)
    return app
