"""`rlhf label`: the labeling page, a FastAPI server and one static page, as the chat page is built.

    GET  /                      the page (static/label.html; label.js and label.css beside it)
    GET  /api/records           {"avatar", "records": [...], "problems": [...]}: every good record of the
                                ranked file, its context as lines, its candidates with their scores
    POST /api/records           {"source", "responses", "scores"}: one context as the person left it,
                                saved as labeled into the ranked file (atomic, under its lock)

A person reorders the candidates, re-scores them, or rewrites one (the rewrite is added as the best
candidate); the page posts the whole record, which replaces the one with that context. Bad input
comes back as {"error": {"message", "code"}} with a real status, never a traceback. The page shows
your chats, so it listens on loopback only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from wechat_avatar.errors import UsageError
from wechat_avatar.rlhf.llm_judge import is_loopback
from wechat_avatar.rlhf.ranked import BadRecord, Ranked, RankedFile, lines_of, record_of, update

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class LabelSettings:
    ranked: Path  # WORKSPACE/rlhf/ranked.jsonl
    self_name: str  # whose lines in a context are the avatar's
    host: str = "127.0.0.1"
    port: int = 8502


def check_settings(s: LabelSettings) -> None:
    if not is_loopback(s.host):
        raise UsageError(f"refusing to serve the labeling page on {s.host}: it shows your chats to whoever can "
                         "reach it", hint="keep it on 127.0.0.1 (from another machine: an SSH tunnel)")  # fmt: skip


class Labeled(BaseModel):
    """One context as the person left it: every candidate, rewrites included, with its score."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    responses: list[str] = Field(min_length=1, max_length=64)
    scores: list[float] = Field(min_length=1, max_length=64)


class Refused(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": str(self), "code": self.code}}, status_code=self.status)


def shown(record: Ranked, self_name: str) -> dict[str, Any]:
    """A record as the page draws it."""
    return {
        "source": record.source,
        "lines": [{"name": x.name, "text": x.text, "self": x.is_self} for x in lines_of(record.source, self_name)],
        "candidates": [{"text": t, "score": s} for t, s in zip(record.responses, record.scores, strict=True)],
        "labeled": record.labeled,
        "provocation": record.provocation,
        "judge": record.judge,
        "origin": record.origin,
    }


def build_app(s: LabelSettings) -> FastAPI:
    app = FastAPI(title="wechat-avatar labeling", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        message = "send the context's source, its candidates and one score each"
        return Refused(422, message, "invalid_request").response()

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "label.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/records")
    def records() -> dict[str, Any]:
        ranked = RankedFile.read(s.ranked)
        return {"avatar": s.self_name, "path": str(s.ranked), "problems": ranked.problems,
                "records": [shown(r, s.self_name) for r in ranked.records]}  # fmt: skip

    @app.post("/api/records")
    def save(body: Labeled) -> dict[str, Any]:
        data = {"source": body.source, "scores": body.scores, "labeled": True, "origin": "label"}
        data |= {f"resp{i}": text for i, text in enumerate(body.responses, 1)}
        try:
            record = record_of(data)
        except BadRecord as err:
            raise Refused(422, str(err), "bad_record") from None
        known = {r.source: r for r in RankedFile.read(s.ranked).records}
        if (old := known.get(record.source)) is None:
            raise Refused(404, "that context is not in the ranked file (was it changed meanwhile? reload)", "unknown")
        record = record.rescored(record.scores, provocation=old.provocation, judge=old.judge)
        update(s.ranked, [record])
        return shown(record, s.self_name)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
