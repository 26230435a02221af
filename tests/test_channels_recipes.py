"""docs/channels.md's framework recipes against a real serve: the exact requests chatgpt-on-wechat,
AstrBot and LangBot send (reference section 1 and 3), and what each reads back."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from sim.harness import real_serve

from wechat_avatar.config import load_config
from wechat_avatar.serve.engine import Engine
from wechat_avatar.workspace import Workspace

HEADERS = {"Authorization": "Bearer sk-local"}


@pytest.fixture(scope="module")
def engine(tiny_workspace: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    ws = Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("recipes") / "workspace"))
    engine = Engine.open(ws, load_config(tiny_config), None)
    yield engine
    engine.close()


def test_chatgpt_on_wechat_custom_bot(engine: Engine, tmp_path: Path) -> None:
    """CoW non-agent mode: non-streamed, empty character_desc as the system prompt, reads usage."""
    body = {"model": "wechat-avatar", "messages": [{"role": "system", "content": ""},
            {"role": "user", "content": "在吗"}], "temperature": 0.9, "top_p": 1, "frequency_penalty": 0,
            "presence_penalty": 0, "stream": False}  # fmt: skip
    with real_serve(Workspace(tmp_path), engine) as url:
        done = httpx2.post(f"{url}/v1/chat/completions", json=body, headers=HEADERS, timeout=60).json()
    assert (
        isinstance(done["choices"][0]["message"]["content"], str)
        and "<s>" not in done["choices"][0]["message"]["content"]
    )
    assert done["usage"]["total_tokens"] > done["usage"]["completion_tokens"] > 0


def test_astrbot_openai_compatible_provider_with_segmented_reply(engine: Engine, tmp_path: Path) -> None:
    """AstrBot: lists models, streams with include_usage, sends tools and max_tokens (the recipe sets 256:
    its default 8192 is over serve's limit and is refused with a clear 422)."""
    from openai import BadRequestError, OpenAI, UnprocessableEntityError

    with real_serve(Workspace(tmp_path), engine, bubble_mode="keep") as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-local", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list()] == ["wechat-avatar"]
        tool = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
        asked = {"model": "wechat-avatar", "tools": [tool],
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "在吗"}]}]}  # fmt: skip
        chunks = list(client.chat.completions.create(**asked, max_tokens=256, stream=True,
                                                     stream_options={"include_usage": True}))  # fmt: skip
        with pytest.raises((UnprocessableEntityError, BadRequestError), match="max_tokens"):
            client.chat.completions.create(**asked, max_tokens=8192)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    segments = [s.strip() for s in text.split("<s>") if s.strip()]  # what split_words ["<s>"] makes of it
    assert text == "<s>".join(segments)  # clean delimiters: AstrBot's split gives the bubbles as they are


def test_langbot_chat_completions_requester(engine: Engine, tmp_path: Path) -> None:
    """LangBot's openai-chat-completions requester: a plain non-streamed call; newline-joined content."""
    from openai import OpenAI

    with real_serve(Workspace(tmp_path), engine) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-local", max_retries=0, timeout=60)
        said = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "嗯"},
                {"role": "user", "content": "在干嘛"}]  # fmt: skip
        done = client.chat.completions.create(model="wechat-avatar", messages=said)
    assert done.choices[0].message.role == "assistant" and "<s>" not in (done.choices[0].message.content or "")
