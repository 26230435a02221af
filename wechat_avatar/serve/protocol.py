"""The wire format: OpenAI's chat completions (field order as OpenAI's), then our native API.

Requests ignore fields they do not know (`tools`, `logprobs`, `n`, …): clients send many. Ranges
are declared here; limits that depend on the server's settings are checked by the app, with
the same error shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- OpenAI: /v1/chat/completions ------------------------------------------------------------------------------


class ContentPart(Request):
    type: str
    text: str | None = None  # parts other than text (image_url, input_audio, …) are ignored


class ChatMessage(Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(Request):
    include_usage: bool = False


class ChatCompletionRequest(Request):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = Field(None, description="The end user: who the avatar is talking to (a contact's name).")

    @property
    def tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop or [] if s]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    segments: list[str] | None = None  # ours (bubble_mode: segments): the bubbles one by one


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "local"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


# --- native: /v1/avatar/… --------------------------------------------------------------------------------------


class ReplyRequest(Request):
    """What a friend says: one `message` or several `messages` (each its own line, as in WeChat)."""

    friend: str = Field(min_length=1, max_length=200, description="A contact's wxid, remark or nickname, or any name.")
    message: str | None = Field(None, min_length=1)
    messages: list[str] | None = Field(None, min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = Field(False, description="Server-sent events: the bubbles so far as they decode, then the "
                         "whole reply with usage, then `data: [DONE]`.")  # fmt: skip

    @model_validator(mode="after")
    def _one_of(self) -> ReplyRequest:
        if (self.message is None) == (self.messages is None):
            raise ValueError("send exactly one of `message` (a string) and `messages` (a list of strings)")
        return self

    @property
    def said(self) -> list[str]:
        return [self.message] if self.message is not None else list(self.messages or [])


class ReplyResponse(BaseModel):
    friend: str
    name: str
    bubbles: list[str]
    usage: Usage
    finish_reason: str


class ReplySoFar(BaseModel):
    """One event of a streamed reply: every bubble decoded so far (the last may still grow). The
    stream's last event before [DONE] is a whole ReplyResponse (it has `usage`)."""

    bubbles: list[str]


class CorrectionRequest(Request):
    """A thumbs-down on the avatar's last reply to `friend`, and the reply it should have sent."""

    friend: str = Field(min_length=1, max_length=200)
    better: str = Field(min_length=1, max_length=4000, description="Bubbles split by <s>.")


class CorrectionResponse(BaseModel):
    friend: str
    context: str  # the ranked file's `source`: the context the reply answered
    said: str
    better: str


class Friend(BaseModel):
    name: str  # a display name: send it back as `friend` and it names the same friend
    contact: bool  # one of the store's busiest contacts
    kept: int  # messages the server keeps of this friend


class FriendList(BaseModel):
    avatar: str  # the avatar's own name
    friends: list[Friend]


class HistoryMessage(BaseModel):
    role: Literal["friend", "avatar"]
    name: str
    text: str
    ts_ms: int


class HistoryResponse(BaseModel):
    friend: str
    name: str
    messages: list[HistoryMessage]


class Cleared(BaseModel):
    friend: str
    deleted: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"] = "ok"  # unavailable: a 503, the backend cannot generate (see error)
    model_loaded: bool
    model: str
    backend: str
    queue_depth: int
    in_flight: int
    batches: int
    error: str | None = None


# --- errors ----------------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_json(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorBody(message=message, type=type_, param=param, code=code)).model_dump()
