"""Corrections while chatting land in rlhf/ranked.jsonl: the native API's POST /v1/avatar/corrections over
real HTTP, the chat page's thumbs-down in a real headless Chromium (through `web`), and the terminal
`chat`'s /bad — each with the context the reply answered, the better reply scored above it, labeled."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_serve import GREEDY, call, running
from test_web import SAMPLED, browser, page  # noqa: F401  # the Chromium fixtures

from wechat_avatar.config import ServeConfig, load_config
from wechat_avatar.rlhf.ranked import RankedFile
from wechat_avatar.serve.app import Settings, build_app
from wechat_avatar.serve.engine import Engine
from wechat_avatar.serve.friends import Friends
from wechat_avatar.web.app import WebSettings
from wechat_avatar.web.app import build_app as build_web
from wechat_avatar.workspace import Workspace


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("corrections") / "workspace"))


@pytest.fixture(scope="module")
def api(workspace: Workspace, tiny_config: Path) -> Iterator[str]:
    engine = Engine.open(workspace, load_config(tiny_config), None)
    settings = Settings(ServeConfig(**{**GREEDY, **SAMPLED}), workspace.serve_state, Friends.of(workspace),
                        workspace.ranked)  # fmt: skip
    try:
        with running(build_app(settings, engine)) as url:
            yield url
    finally:
        engine.close()


def records(workspace: Workspace) -> dict[str, Any]:
    return {r.source: r for r in RankedFile.read(workspace.ranked).records}


def test_the_api_records_a_correction_of_the_last_reply(api: str, workspace: Workspace) -> None:
    status, _, raw = call(api, "POST", "/v1/avatar/reply", {"friend": "老王", "message": "在吗"})
    assert status == 200, raw
    said = "<s>".join(json.loads(raw)["bubbles"])
    status, _, raw = call(api, "POST", "/v1/avatar/corrections", {"friend": "老王", "better": "在的<s>咋了"})
    assert status == 200, raw
    assert json.loads(raw) == {"friend": "老王", "context": "老王:在吗", "said": said, "better": "在的<s>咋了"}
    made = records(workspace)["老王:在吗"]
    assert made.responses == ("在的<s>咋了", said) and made.scores == (2.0, 1.0)
    assert made.labeled and made.origin == "web"


def test_a_correction_without_a_reply_or_text_is_a_json_error(api: str, workspace: Workspace) -> None:
    before = workspace.ranked.read_bytes() if workspace.ranked.exists() else b""
    status, _, raw = call(api, "POST", "/v1/avatar/corrections", {"friend": "没说过话的人", "better": "好"})
    assert status == 409 and json.loads(raw)["error"]["code"] == "nothing_to_correct"
    call(api, "POST", "/v1/avatar/reply", {"friend": "老李", "message": "在吗"})
    status, _, raw = call(api, "POST", "/v1/avatar/corrections", {"friend": "老李", "better": " <s> "})
    assert status == 422 and "empty" in json.loads(raw)["error"]["message"]
    status, _, _ = call(api, "POST", "/v1/avatar/corrections", {"friend": "老李"})
    assert status == 422
    assert (workspace.ranked.read_bytes() if workspace.ranked.exists() else b"") == before


def test_the_chat_pages_thumbs_down_saves_what_was_typed(page: Any, api: str, workspace: Workspace) -> None:  # noqa: F811
    with running(build_web(WebSettings(api=api))) as web:
        page.goto(web)
        page.fill("#name-input", "小李")
        page.press("#name-input", "Enter")
        page.fill("#message", "吃饭了吗")
        page.press("#message", "Enter")
        page.click(".turn.avatar .thumb")
        said = page.input_value("#better")  # the reply, to edit
        page.fill("#better", "吃了<s>你呢[呲牙]")
        page.click("#correct-form button")
        page.wait_for_selector("#notice.ok:not([hidden])")
        assert "记下了" in page.inner_text("#notice") and page.is_hidden("#correct-form")
    made = records(workspace)["小李:吃饭了吗"]
    assert made.responses == ("吃了<s>你呢[呲牙]", said) and made.labeled and made.origin == "web"


def test_the_terminal_chat_takes_bad_and_a_better_reply(workspace: Workspace, tiny_config: Path) -> None:
    early = run_cli("chat", "-w", workspace.root, "-c", tiny_config, "--as", "小王", "-m", "/bad 好")
    assert early.returncode == 0 and "there is no reply to correct yet" in early.stderr
    result = run_cli("chat", "-w", workspace.root, "-c", tiny_config, "--as", "小王", "--temperature", "1",
                     "-m", "在吗", "-m", "/bad 在的<s>咋了")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "kept as a correction" in result.stderr
    made = records(workspace)["小王:在吗"]
    assert made.responses[0] == "在的<s>咋了" and made.scores == (2.0, 1.0) and made.origin == "chat"
