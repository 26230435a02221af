"""The chat page in a real headless Chromium (Debian's, driven by Playwright), against a real web server
and a real serve API on loopback with the tiny model: pick a friend, send, watch the bubbles stream in,
reload and find the history; the API down, too slow, a wrong key and a rate limit, each said in the page.

Chromium comes from the system (`make setup` installs it); a missing browser fails these tests, it does
not skip them.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_serve import call, running, settings
from test_serve_stream import busiest_friends

from wechat_avatar.config import load_config
from wechat_avatar.generate import Generated
from wechat_avatar.serve.app import build_app
from wechat_avatar.serve.engine import Engine
from wechat_avatar.web.app import WebSettings
from wechat_avatar.web.app import build_app as build_web

CHROMIUM = Path("/usr/bin/chromium")
KEY = "sk-web-0123456789"
SAMPLED = {"temperature": 1.0, "max_new_tokens": 8}  # greedy decoding of the tiny model says nothing
WAIT_MS = 60_000  # the longest a page is given to show something (the tiny model answers in well under that)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (it installs Debian's chromium and fonts-noto-cjk), "
                    "or `apt-get install chromium fonts-noto-cjk`", pytrace=False)  # fmt: skip
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 700}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from wechat_avatar.workspace import Workspace

    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("web") / "workspace"))


@pytest.fixture(scope="module")
def engine(workspace: Any, tiny_config: Path) -> Iterator[Engine]:
    engine = Engine.open(workspace, load_config(tiny_config), None)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def api(workspace: Any, engine: Engine) -> Iterator[str]:
    with running(build_app(settings(workspace, **SAMPLED), engine)) as url:
        yield url


@pytest.fixture(scope="module")
def web(api: str) -> Iterator[str]:
    with running(build_web(WebSettings(api=api))) as url:
        yield url


def bubbles(page: Any, side: str = "avatar") -> list[list[str]]:
    """The page's turns of one side, each as its bubbles' texts."""
    return page.eval_on_selector_all(f".turn.{side} .bubbles", "cols => cols.map(c => Array.from("
                                     "c.querySelectorAll('.bubble:not(.pending)'), b => b.textContent))")  # fmt: skip


def notice(page: Any) -> str:
    page.wait_for_selector("#notice:not([hidden])")
    return page.inner_text("#notice")


def send(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_picker_offers_the_busiest_contacts(page: Any, web: str, workspace: Any) -> None:
    page.goto(web)
    page.wait_for_selector("#friends button")
    names = page.eval_on_selector_all("#friends .name", "els => els.map(e => e.textContent)")
    assert names[:12] == busiest_friends(workspace, 12)
    first = page.eval_on_selector("#friends button .face", "a => [a.textContent, getComputedStyle(a).borderRadius]")
    assert first == [names[0][0], "50%"]  # a round avatar with the first character of the name
    assert page.inner_text("#avatar-name") == json.loads(call(web, "GET", "/api/friends")[2])["avatar"]


def test_pick_send_see_the_reply_then_reload_and_it_is_still_there(page: Any, web: str, api: str,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    page.goto(web)
    page.wait_for_selector("#friends button")
    name = page.inner_text("#friends li:first-child .name")
    call(api, "DELETE", f"/v1/avatar/friends/{name}/history")
    page.click("#friends li:first-child button")
    page.wait_for_selector("#chat:not([hidden])")
    assert page.inner_text("#me") == name
    send(page, "周末去爬山不")
    page.wait_for_selector(".turn.avatar .bubble:not(.pending)")
    page.wait_for_selector(".turn.avatar.typing", state="detached")  # the reply is whole
    shown = bubbles(page)
    assert bubbles(page, "friend") == [["周末去爬山不"]] and len(shown) == 1 and shown[0]
    kept = json.loads(call(api, "GET", f"/v1/avatar/friends/{name}/history")[2])["messages"]
    assert [m["text"] for m in kept] == ["周末去爬山不", *shown[0]]  # the page shows what the server kept
    assert re.fullmatch(r"\d\d:\d\d", page.inner_text(".turn.friend .time"))
    # laid out as a chat: each turn across the page (not squeezed to its avatar's width), a round 40 px avatar
    turns = page.eval_on_selector_all(".turn", "els => els.map(e => e.getBoundingClientRect().width)")
    assert min(turns) > 600 and page.eval_on_selector(".turn.avatar .face", "f => f.offsetWidth") == 40
    page.screenshot(path=str(tmp_path / "chat.png"))  # looked at by hand: Chinese renders, bubbles and avatars
    page.reload()
    page.wait_for_selector(".turn.avatar .bubble")
    assert page.inner_text("#me") == name  # the page remembers who you are
    assert bubbles(page, "friend") == [["周末去爬山不"]] and bubbles(page) == shown  # read back from the server


def test_bubbles_appear_as_the_reply_streams(page: Any, workspace: Any, engine: Engine, tmp_path: Path) -> None:
    release = threading.Event()

    class Halfway(Engine):
        """Says the first bubble and half the second, then waits for the test before finishing."""

        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            for watch in watchers or []:
                if watch:
                    watch("好呀<s>几点")
            release.wait(WAIT_MS / 1000)
            return [Generated("好呀<s>几点出发", 5, 4, "stop") for _ in conversations]

    halfway = Halfway(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), halfway)) as api, \
                running(build_web(WebSettings(api=api))) as web:  # fmt: skip
            page.goto(web)
            page.fill("#name-input", "胡三行")
            page.press("#name-input", "Enter")
            send(page, "周末去爬山不")
            page.wait_for_function("document.querySelectorAll('.turn.avatar.typing .bubble:not(.pending)')"
                                   ".length == 2")  # fmt: skip
            halfway_there = bubbles(page)
            release.set()
            page.wait_for_selector(".turn.avatar.typing", state="detached")
            assert halfway_there == [["好呀", "几点"]] and bubbles(page) == [["好呀", "几点出发"]]
    finally:
        release.set()
        halfway.close()


def test_the_api_down_is_said_in_the_page(page: Any) -> None:
    with running(build_web(WebSettings(api=f"http://127.0.0.1:{free_port()}"))) as web:
        page.goto(web)
        assert "the avatar's API is down" in notice(page)
        page.fill("#name-input", "胡三行")
        page.press("#name-input", "Enter")
        page.wait_for_selector("#chat:not([hidden])")
        page.evaluate("document.getElementById('notice').hidden = true")
        send(page, "在吗")
        assert "the avatar's API is down" in notice(page)
        assert bubbles(page) == [] and bubbles(page, "friend") == [["在吗"]]  # no empty reply left behind


def test_a_slow_api_is_said_in_the_page(page: Any, workspace: Any, engine: Engine, tmp_path: Path) -> None:
    release = threading.Event()

    class Stuck(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            release.wait(WAIT_MS / 1000)
            return [Generated("好", 5, 1, "stop") for _ in conversations]

    stuck = Stuck(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), stuck)) as api, \
                running(build_web(WebSettings(api=api, timeout_s=1.0))) as web:  # fmt: skip
            page.goto(web)
            page.fill("#name-input", "胡三行")
            page.press("#name-input", "Enter")
            send(page, "在吗")
            assert "the avatar is too slow: no answer within 1 s" in notice(page)
            release.set()
    finally:
        release.set()
        stuck.close()


def test_a_wrong_api_key_and_a_rate_limit_are_said_in_the_page(page: Any, workspace: Any, engine: Engine,
                                                              tmp_path: Path) -> None:  # fmt: skip
    keyed = build_app(settings(workspace, tmp_path / "s.db", api_key=KEY, requests_per_minute=3), engine)
    with running(keyed) as api:
        with running(build_web(WebSettings(api=api, api_key="sk-web-wrong"))) as web:
            page.goto(web)
            assert "the web server's API key is wrong" in notice(page)
        with running(build_web(WebSettings(api=api, api_key=KEY))) as web:
            page.goto(web)  # /api/friends: the first of three calls a minute
            page.wait_for_selector("#friends button")
            page.click("#friends li:first-child button")  # two more: friends and history
            page.wait_for_selector("#chat:not([hidden])")
            send(page, "在吗")  # the fourth
            assert re.fullmatch(r"too many requests, retry in \d+ s", notice(page))


def test_the_web_command_off_loopback_with_a_password_from_the_environment(api: str) -> None:
    port = free_port()
    env = {"WECHAT_AVATAR_WEB_PASSWORD": "open-sesame", "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "wechat_avatar", "web", "--api", api, "--host", "0.0.0.0", "--port", str(port)]
    server = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url, opened = f"http://127.0.0.1:{port}", {"Authorization": "Basic " + base64.b64encode(b"x:open-sesame").decode()}
    status = 0
    try:
        for _ in range(600):
            try:
                status = call(url, "GET", "/")[0]
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                time.sleep(0.1)
        status_, _, body = call(url, "GET", "/api/friends", headers=opened)
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert status == 401 and status_ == 200 and json.loads(body)["friends"]
    assert f"chat page for friends: http://0.0.0.0:{port}" in stderr and "Traceback" not in stderr


def test_off_loopback_the_page_needs_a_password(browser: Any, web: str, api: str) -> None:
    refused = run_cli("web", "--api", api, "--host", "0.0.0.0")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "refusing to serve the chat page on 0.0.0.0 without a page password" in refused.stderr
    with running(build_web(WebSettings(api=api, password="开门123"))) as locked:
        for path in ("/", "/static/page.js", "/api/friends"):  # the page, its files and the API behind it
            assert call(locked, "GET", path)[0] == 401
        wrong = base64.b64encode("x:开门124".encode()).decode()
        assert call(locked, "GET", "/", headers={"Authorization": f"Basic {wrong}"})[0] == 401
        for password, status in (("开门124", 401), ("开门123", 200)):
            context = browser.new_context(http_credentials={"username": "x", "password": password})
            page = context.new_page()
            assert page.goto(locked).status == status
            if status == 200:
                page.wait_for_selector("#friends button")  # the page's own calls pass too
            context.close()
