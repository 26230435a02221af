"""The native API streamed (`"stream": true` on /v1/avatar/reply) and the friends list the web page offers,
over real HTTP on loopback with the tiny model (helpers from test_serve)."""

from __future__ import annotations

import http.client
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve import call, running, settings

from wechat_avatar.config import load_config
from wechat_avatar.generate import Generated
from wechat_avatar.serve.app import build_app
from wechat_avatar.serve.engine import Engine
from wechat_avatar.serve.friends import Friends, Listed
from wechat_avatar.workspace import Workspace

MOM = "wxid_y9g6r1pt1q7t9v"  # in the synthetic export: remark 老妈, nickname 刘洋
SAMPLED = {"temperature": 1.0, "seed": 1, "max_tokens": 8}  # greedy decoding of the tiny model says nothing


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("stream") / "workspace"))


@pytest.fixture(scope="module")
def engine(workspace: Workspace, tiny_config: Path) -> Iterator[Engine]:
    engine = Engine.open(workspace, load_config(tiny_config), None)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def base(workspace: Workspace, engine: Engine) -> Iterator[str]:
    with running(build_app(settings(workspace), engine)) as url:
        yield url


def events(raw: bytes) -> list[Any]:
    """An SSE body as its events' data, `[DONE]` as the string; every event must end in a blank line."""
    parts = raw.decode().split("\n\n")
    assert parts[-1] == "" and all(p.startswith("data: ") for p in parts[:-1]), raw
    data = [p.removeprefix("data: ") for p in parts[:-1]]
    return [d if d == "[DONE]" else json.loads(d) for d in data]


def history(url: str, friend: str) -> list[tuple[str, str, str]]:
    kept = json.loads(call(url, "GET", f"/v1/avatar/friends/{friend}/history")[2])["messages"]
    return [(m["role"], m["name"], m["text"]) for m in kept]


def test_a_streamed_reply_sends_the_bubbles_so_far_then_the_reply_and_saves_as_a_plain_one(base: str) -> None:
    call(base, "DELETE", f"/v1/avatar/friends/{MOM}/history")
    status, headers, raw = call(base, "POST", "/v1/avatar/reply", {"friend": "老妈", "message": "在吗", **SAMPLED,
                                                                  "stream": True})  # fmt: skip
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    *so_far, done, end = events(raw)
    streamed = history(base, MOM)
    call(base, "DELETE", f"/v1/avatar/friends/{MOM}/history")
    plain = json.loads(call(base, "POST", "/v1/avatar/reply", {"friend": "老妈", "message": "在吗", **SAMPLED})[2])
    assert end == "[DONE]" and done == plain  # the same seed: the same reply, usage and all
    assert so_far and all(set(e) == {"bubbles"} for e in so_far)  # it streamed before the whole reply came
    whole = "<s>".join(done["bubbles"])
    assert all(whole.startswith("<s>".join(e["bubbles"])) for e in so_far)  # each event: what came so far
    assert streamed == history(base, MOM)  # kept exactly as the plain request keeps it
    assert streamed == [("friend", "老妈", "在吗"), *(("avatar", streamed[1][1], b) for b in done["bubbles"])]


def test_a_failure_mid_stream_is_an_error_event_then_done(workspace: Workspace, engine: Engine,
                                                         tmp_path: Path) -> None:  # fmt: skip
    class Failing(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            raise RuntimeError("the model fell over")

    failing = Failing(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), failing)) as url:
            status, _, raw = call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗", "stream": True})
            kept = history(url, "a")
    finally:
        failing.close()
    error, end = events(raw)
    assert status == 200 and end == "[DONE]" and error["error"]["code"] == "generation_failed"
    assert "the model fell over" in error["error"]["message"] and kept == []  # nothing half-saved


def test_a_streamed_turn_is_kept_when_the_client_leaves_mid_reply(workspace: Workspace, engine: Engine,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    release, started = threading.Event(), threading.Event()

    class Held(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            started.set()
            release.wait(30)
            return [Generated("好<s>走", 5, 2, "stop") for _ in conversations]

    held = Held(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), held)) as url:
            conn = http.client.HTTPConnection(*url.removeprefix("http://").split(":"), timeout=30)
            conn.request("POST", "/v1/avatar/reply", json.dumps({"friend": "a", "message": "在吗", "stream": True}),
                         {"Content-Type": "application/json"})  # fmt: skip
            assert conn.getresponse().status == 200 and started.wait(30)
            conn.close()  # the friend reloads the page while the avatar is still typing
            release.set()
            kept: list[tuple[str, str, str]] = []
            for _ in range(300):  # the turn finishes on its own; no client waits for it
                if kept := history(url, "a"):
                    break
                time.sleep(0.05)
    finally:
        release.set()
        held.close()
    assert [text for _, _, text in kept] == ["在吗", "好", "走"]


# --- the friends the page offers ----------------------------------------------------------------------------------


def busiest_friends(workspace: Workspace, n: int) -> list[str]:
    """The oracle, straight from chat.db: private chats with friends by messages, as remark or nickname."""
    with sqlite3.connect(workspace.store) as db:
        rows = db.execute(
            "SELECT coalesce(nullif(c.remark, ''), nullif(c.nickname, ''), nullif(c.alias, ''), c.wxid) "
            "FROM messages m JOIN chats ch ON ch.id = m.chat_id JOIN contacts c ON c.wxid = m.chat_id "
            "WHERE ch.kind = 'private' AND c.kind = 'friend' GROUP BY m.chat_id ORDER BY count(*) DESC LIMIT ?",
            (n,),
        ).fetchall()  # fmt: skip
    return [name for (name,) in rows]


def test_the_friends_list_is_the_busiest_contacts_then_friends_with_history(base: str, workspace: Workspace) -> None:
    for friend in ("路人乙", "老妈"):
        call(base, "POST", "/v1/avatar/reply", {"friend": friend, "message": "在吗"})
    status, _, body = call(base, "GET", "/v1/avatar/friends")
    listed = json.loads(body)
    busiest = busiest_friends(workspace, 12)
    names = [f["name"] for f in listed["friends"]]
    assert status == 200 and listed["avatar"] and len(busiest) == 12
    assert names[:12] == busiest and all(f["contact"] for f in listed["friends"][:12])
    assert "路人乙" in names[12:] and not any(n.startswith("wxid_") for n in names)
    mom = next(f for f in listed["friends"] if f["name"] == "老妈")  # resolved to the contact, counted once
    assert names.count("老妈") == 1 and mom["kept"] == len(history(base, MOM)) > 0


def test_the_list_shows_no_name_the_pseudonymiser_would_hide() -> None:
    contacts = {"wxid_a": ("wxid_a", "张三13800138000"), "wxid_b": ("wxid_b", "wxid_b"), "wxid_c": ("wxid_c", "老妈")}
    friends = Friends(contacts, busiest=["张三13800138000", "老妈", "wxid_b"])
    kept = [("路人", 2), ("wxid_c", 4), ("我的电话13900139000", 1), ("wxid_b", 3)]  # most recent first
    assert friends.listed(kept) == [Listed("老妈", True, 4), Listed("路人", False, 2)]
