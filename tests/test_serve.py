"""`wechat-avatar serve` over real HTTP: a uvicorn server on a loopback port with the tiny model.

The official openai client (plain and streamed), raw SSE framing, the native per-friend API and
its SQLite history across restarts, auth, every limit's status and JSON error, malformed bodies,
concurrent clients. Greedy decoding and a few tokens keep it quick; nothing is timed.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from conftest import run_cli

from wechat_avatar.config import AvatarConfig, ServeConfig, load_config
from wechat_avatar.generate import Generated, RowSampling, generate_batch
from wechat_avatar.serve.app import Settings, build_app
from wechat_avatar.serve.engine import Engine, Sampling
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.gate import Load
from wechat_avatar.workspace import Workspace

KEY = "sk-test-0123456789"
MOM = "wxid_y9g6r1pt1q7t9v"  # in the synthetic export: remark 老妈, nickname 刘洋
GREEDY = {"temperature": 0.0, "max_new_tokens": 6, "batch_wait_ms": 20.0}


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("serve") / "workspace"))


@pytest.fixture(scope="module")
def cfg(tiny_config: Path) -> AvatarConfig:
    return load_config(tiny_config)


@pytest.fixture(scope="module")
def engine(workspace: Workspace, cfg: AvatarConfig) -> Iterator[Engine]:
    engine = Engine.open(workspace, cfg, None)
    yield engine
    engine.close()


def settings(workspace: Workspace, state: Path | None = None, **serve: Any) -> Settings:
    return Settings(ServeConfig(**{**GREEDY, **serve}), state or workspace.serve_state, Friends.of(workspace))


@contextmanager
def running(app: Any) -> Iterator[str]:
    """The app under a real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def base(workspace: Workspace, engine: Engine) -> Iterator[str]:
    with running(build_app(settings(workspace), engine)) as url:
        yield url


def call(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One raw HTTP request: (status, headers, body bytes)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, quote(path), body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    out = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    conn.close()
    return out


def error_of(status_and_body: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, Any]]:
    status, _, body = status_and_body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return status, error


def openai_client(url: str, key: str = "none") -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


# --- the OpenAI API -----------------------------------------------------------------------------------------------


def test_openai_client_lists_the_model_and_gets_a_reply_with_usage(base: str) -> None:
    client = openai_client(base)
    assert [m.id for m in client.models.list()] == ["wechat-avatar"]
    done = client.chat.completions.create(model="wechat-avatar", messages=[{"role": "user", "content": "在吗"}],
                                          user="胡三行")  # fmt: skip
    assert done.object == "chat.completion" and done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content and done.choices[0].finish_reason in {"stop", "length"}
    assert "<s>" not in done.choices[0].message.content  # newline-joined by default
    usage = done.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 6
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_client_streams_with_usage(base: str) -> None:
    client = openai_client(base)
    # sampled with a seed: greedy decoding of the 6-step tiny model says nothing at all
    asked = {"model": "x", "messages": [{"role": "user", "content": "在吗"}], "temperature": 1.0, "seed": 1,
             "max_tokens": 8}  # fmt: skip
    chunks = list(client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    text = "".join(deltas)
    whole = client.chat.completions.create(**asked)
    assert len(deltas) > 1  # streamed as the batch decodes, not in one piece at the end
    assert text == whole.choices[0].message.content  # greedy: the stream says what the plain call says
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_raw_sse_framing(base: str) -> None:
    body = {"messages": [{"role": "user", "content": "吃饭去？"}], "stream": True}
    status, headers, raw = call(base, "POST", "/v1/chat/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = raw.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"  # every event ends with a blank line
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}  # no usage: it was not asked for
    assert all("usage" not in c for c in chunks)


def test_list_content_unknown_fields_and_system_prompts_are_taken(base: str) -> None:
    plain = {"messages": [{"role": "user", "content": "在吗"}]}
    fancy = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "在"}, {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "吗"}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "logprobs": True,
        "frequency_penalty": 0.5, "n": 1, "response_format": {"type": "text"}, "something_new": {"a": 1}}  # fmt: skip
    a, b = (call(base, "POST", "/v1/chat/completions", body) for body in (plain, fancy))
    assert a[0] == b[0] == 200
    # the same conversation for the model: parts joined, the client's system prompt and extras left out
    assert json.loads(a[2])["choices"] == json.loads(b[2])["choices"]


@pytest.mark.parametrize("mode", ["keep", "segments"])
def test_bubble_modes(workspace: Workspace, engine: Engine, tmp_path: Path, mode: str) -> None:
    class TwoBubbles(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            return [Generated(" 好<s>开冲 ", 5, 3, "stop") for _ in conversations]

    fixed = TwoBubbles(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db", bubble_mode=mode), fixed)) as url:
            body = {"messages": [{"role": "user", "content": "走吗"}]}
            message = json.loads(call(url, "POST", "/v1/chat/completions", body)[2])["choices"][0]["message"]
            streamed = call(url, "POST", "/v1/chat/completions", {**body, "stream": True})[2].decode()
            stopped = json.loads(call(url, "POST", "/v1/chat/completions", {**body, "stop": ["冲"]})[2])["choices"][0]
    finally:
        fixed.close()
    assert stopped["message"]["content"] == ("好<s>开" if mode == "keep" else "好\n开")
    deltas = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in streamed.split("\n\n")[1:-3]]
    if mode == "keep":
        assert message == {"role": "assistant", "content": "好<s>开冲"} and deltas == ["好", "<s>开冲"]
    else:
        assert message == {"role": "assistant", "content": "好\n开冲", "segments": ["好", "开冲"]}


def test_an_error_mid_stream_is_an_error_chunk_then_done(workspace: Workspace, engine: Engine, tmp_path: Path) -> None:
    class Broken(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            raise RuntimeError("the model fell over")

    broken = Broken(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), broken)) as url:
            body = {"messages": [{"role": "user", "content": "在吗"}]}
            status, _, raw = call(url, "POST", "/v1/chat/completions", {**body, "stream": True})
            plain = error_of(call(url, "POST", "/v1/chat/completions", body))
            healthy = call(url, "GET", "/healthz")[0]
    finally:
        broken.close()
    events = raw.decode().split("\n\n")
    assert status == 200 and events[-2:] == ["data: [DONE]", ""]
    assert json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    error = json.loads(events[-3][6:])["error"]
    assert error["type"] == "server_error" and "the model fell over" in error["message"]
    assert plain[0] == 500 and plain[1]["code"] == "internal_error" and healthy == 200


# --- the native API -----------------------------------------------------------------------------------------------


def test_native_history_per_friend_isolated_and_deleted(base: str, workspace: Workspace) -> None:
    def reply(friend: str, **said: Any) -> dict[str, Any]:
        status, _, body = call(base, "POST", "/v1/avatar/reply", {"friend": friend, **said})
        assert status == 200, body
        return json.loads(body)

    call(base, "DELETE", "/v1/avatar/friends/刘洋/history")
    first = reply("刘洋", message="在吗")  # a nickname
    assert first["friend"] == MOM and first["name"] == "老妈"  # the contact's remark from chat.db
    assert first["bubbles"] and all("<s>" not in b for b in first["bubbles"]) and first["usage"]["total_tokens"] > 0
    reply("老妈", messages=["吃饭去？", "老地方"])  # the remark names the same friend
    reply("路人甲", message="你好")  # not a contact: known by the name sent
    status, _, body = call(base, "GET", f"/v1/avatar/friends/{MOM}/history")
    kept = json.loads(body)
    friend_said = [m["text"] for m in kept["messages"] if m["role"] == "friend"]
    assert status == 200 and friend_said == ["在吗", "吃饭去？", "老地方"]
    assert {m["name"] for m in kept["messages"] if m["role"] == "friend"} == {"老妈"}
    avatar = [m["text"] for m in kept["messages"] if m["role"] == "avatar"]
    assert avatar[: len(first["bubbles"])] == first["bubbles"]
    other = json.loads(call(base, "GET", "/v1/avatar/friends/路人甲/history")[2])["messages"]
    assert [m["text"] for m in other if m["role"] == "friend"] == ["你好"]
    status, _, body = call(base, "DELETE", "/v1/avatar/friends/老妈/history")
    assert status == 200 and json.loads(body) == {"friend": MOM, "deleted": len(kept["messages"])}
    assert json.loads(call(base, "GET", f"/v1/avatar/friends/{MOM}/history")[2])["messages"] == []
    assert len(json.loads(call(base, "GET", "/v1/avatar/friends/路人甲/history")[2])["messages"]) == len(other)


def test_the_prompt_holds_the_history_as_the_dataset_would(workspace: Workspace, engine: Engine,
                                                          tmp_path: Path) -> None:  # fmt: skip
    seen: list[list[dict[str, str]]] = []

    class Recording(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            seen.extend(conversations)
            return [Generated("好<s>走", 5, 2, "stop") for _ in conversations]

    recording = Recording(engine.loaded, engine.persona)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), recording)) as url:
            call(url, "POST", "/v1/avatar/reply", {"friend": MOM, "messages": ["在吗", "吃\n饭"]})
            call(url, "POST", "/v1/avatar/reply", {"friend": MOM, "message": "几点"})
    finally:
        recording.close()
    system = engine.persona.system
    assert seen[1] == [{"role": "system", "content": system},
                       {"role": "user", "content": "老妈:在吗\n老妈:吃 饭"},  # one line per message, as in training
                       {"role": "assistant", "content": "好<s>走"},
                       {"role": "user", "content": "老妈:几点"}]  # fmt: skip


def test_history_survives_a_restart(workspace: Workspace, engine: Engine, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with running(build_app(settings(workspace, state), engine)) as url:
        said = json.loads(call(url, "POST", "/v1/avatar/reply", {"friend": "驾校周师傅", "message": "明天练车"})[2])
    with running(build_app(settings(workspace, state), engine)) as url:
        kept = json.loads(call(url, "GET", "/v1/avatar/friends/a5881518165/history")[2])["messages"]
    assert [m["text"] for m in kept] == ["明天练车", *said["bubbles"]]


def test_healthz(base: str) -> None:
    status, _, body = call(base, "GET", "/healthz")
    health = json.loads(body)
    assert status == 200 and health["model_loaded"] is True and health["backend"] == "transformers"
    assert health["queue_depth"] == 0 and "builtin:tiny-qwen2 + " in health["model"]


# --- auth, limits, bad input --------------------------------------------------------------------------------------


def test_api_key_is_checked(workspace: Workspace, engine: Engine, tmp_path: Path) -> None:
    with running(build_app(settings(workspace, tmp_path / "s.db", api_key=KEY), engine)) as url:
        for headers in ({}, {"Authorization": "Bearer sk-test-0123456788"}, {"Authorization": f"Basic {KEY}"},
                        {"Authorization": "Bearer "}):  # fmt: skip
            status, error = error_of(call(url, "GET", "/v1/models", headers=headers))
            assert status == 401 and error["type"] == "authentication_error"
        assert call(url, "GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})[0] == 200
        assert call(url, "GET", "/healthz")[0] == 200  # health needs no key
        client = openai_client(url, KEY)
        done = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "在吗"}])
        assert done.choices[0].message.content


def test_refuses_to_start_off_loopback_without_a_key(tmp_path: Path) -> None:
    result = run_cli("serve", "--workspace", tmp_path / "nothing", "--host", "0.0.0.0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "refusing to serve on 0.0.0.0 without an API key" in result.stderr
    assert "WECHAT_AVATAR_API_KEY" in result.stderr


def test_the_serve_command_off_loopback_with_a_key_from_the_environment(workspace: Workspace,
                                                                       tiny_config: Path) -> None:  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"WECHAT_AVATAR_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "wechat_avatar", "serve", "-w", str(workspace), "-c", str(tiny_config),
            "--host", "0.0.0.0", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if call(url, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                time.sleep(0.1)
        assert call(url, "GET", "/v1/models")[0] == 401
        body = {"friend": "胡三行", "message": "在吗"}
        status, _, reply = call(url, "POST", "/v1/avatar/reply", body, headers={"Authorization": f"Bearer {KEY}"})
        assert status == 200 and json.loads(reply)["bubbles"]
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "OpenAI base URL" in stderr and "Traceback" not in stderr


def test_each_limit_has_its_status_and_json_error(workspace: Workspace, engine: Engine, tmp_path: Path) -> None:
    limits = {"max_body_bytes": 2048, "max_message_chars": 50, "max_messages": 3, "max_tokens_limit": 16,
              "requests_per_minute": 12}  # fmt: skip
    with running(build_app(settings(workspace, tmp_path / "s.db", **limits), engine)) as url:
        chat = "/v1/chat/completions"
        ok = {"messages": [{"role": "user", "content": "在吗"}]}

        def post(body: Any = None, raw: bytes | None = None, path: str = chat) -> tuple[int, dict[str, Any]]:
            return error_of(call(url, "POST", path, body, raw=raw))

        assert post(raw=b"x" * 3000)[0] == 413
        assert post({"messages": [{"role": "user", "content": "长" * 51}]})[1]["code"] == "message_too_long"
        status, error = post({"messages": [{"role": "user", "content": "a"}] * 4})
        assert (status, error["param"]) == (422, "messages")
        status, error = post({**ok, "max_tokens": 17})
        assert (status, error["param"]) == (422, "max_tokens")
        status, error = post({**ok, "temperature": 9})  # a range declared in protocol.py
        assert (status, error["param"]) == (422, "temperature")
        status, error = post({"friend": "x", "message": "a", "messages": ["b"]}, path="/v1/avatar/reply")
        assert status == 422 and "exactly one of" in error["message"]
        used = 6  # requests so far; the rate limit counts every request that passed the key check
        for _ in range(limits["requests_per_minute"] - used):
            assert call(url, "GET", "/v1/models")[0] == 200
        status, headers, body = call(url, "GET", "/v1/models")
        assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
        assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"


def test_too_many_requests_in_flight(workspace: Workspace, engine: Engine, tmp_path: Path) -> None:
    release = threading.Event()

    class Held(Engine):
        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            release.wait(30)
            return [Generated("好", 5, 1, "stop") for _ in conversations]

    held = Held(engine.loaded, engine.persona)
    try:
        app = build_app(settings(workspace, tmp_path / "s.db", max_concurrent=1), held)
        with running(app) as url, ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"})
            while json.loads(call(url, "GET", "/healthz")[2])["in_flight"] == 0:
                time.sleep(0.01)
            status, headers, body = call(url, "POST", "/v1/avatar/reply", {"friend": "b", "message": "在吗"})
            release.set()
            assert first.result()[0] == 200
    finally:
        release.set()
        held.close()
    assert status == 429 and headers["retry-after"] == "1"
    assert json.loads(body)["error"]["code"] == "too_many_concurrent_requests"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"", 400),
        (b"[]", 422),
        (b'{"messages": "hi"}', 422),
        (b'{"messages": []}', 422),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 422),
        (b'{"messages": [{"role": "user", "content": 5}]}', 422),
        (b'{"messages": [{"role": "assistant", "content": "hi"}]}', 422),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}', 422),
    ],
)
def test_malformed_bodies_are_4xx_json(base: str, raw: bytes, status: int) -> None:
    got, error = error_of(call(base, "POST", "/v1/chat/completions", raw=raw))
    assert got == status and error["type"] == "invalid_request_error"


def test_unknown_routes_and_methods_are_json_errors(base: str) -> None:
    assert error_of(call(base, "GET", "/v1/nothing"))[0] == 404
    assert error_of(call(base, "GET", "/v1/chat/completions"))[0] == 405
    assert error_of(call(base, "POST", "/v1/avatar/reply", {"message": "hi"}))[1]["param"] == "friend"


# --- concurrency and batching -------------------------------------------------------------------------------------


def test_50_concurrent_clients_get_their_own_replies_in_shared_batches(workspace: Workspace, engine: Engine,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    friends = [f"朋友{i}" for i in range(50)]
    texts = ["在吗", "吃饭去？", "明天见", "哈哈哈"]
    before = engine.batches

    def ask(i: int) -> tuple[int, dict[str, Any]]:
        # sampled, each with its own seed: a reply that went to the wrong client would show
        body = {"friend": friends[i], "message": texts[i % 4], "temperature": 1.0, "seed": i, "max_tokens": 8}
        status, _, raw = call(url, "POST", "/v1/avatar/reply", body)
        return status, json.loads(raw)

    app = build_app(settings(workspace, tmp_path / "s.db", max_concurrent=64, requests_per_minute=0), engine)
    with running(app) as url:
        with ThreadPoolExecutor(len(friends)) as pool:
            results = list(pool.map(ask, range(len(friends))))
        batches = engine.batches - before
        histories = [json.loads(call(url, "GET", f"/v1/avatar/friends/{f}/history")[2])["messages"] for f in friends]
        alone = []  # the same requests one at a time, each from an empty history again
        for i, friend in enumerate(friends):
            call(url, "DELETE", f"/v1/avatar/friends/{friend}/history")
            alone.append(ask(i)[1]["bubbles"])
    assert [s for s, _ in results] == [200] * len(friends)
    assert [r["friend"] for _, r in results] == friends
    for i, ((_, r), kept) in enumerate(zip(results, histories, strict=True)):  # each its own line and reply
        assert [m["text"] for m in kept] == [texts[i % 4], *r["bubbles"]]
    assert [r["bubbles"] for _, r in results] == alone  # per-request seeds hold inside a batch
    assert len({tuple(b) for b in alone}) > 4  # the seeds made a difference: replies are told apart
    assert batches < len(friends)  # requests shared batches


def test_batched_and_sequential_replies_agree(engine: Engine) -> None:
    persona = engine.persona
    prompts = [persona.prompt([persona.line(False, "胡三行", text)]) for text in ("在吗", "吃饭去？今晚", "好")]
    model, tokenizer = engine.loaded.model, engine.loaded.tokenizer
    kwargs = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0}
    batched = generate_batch(model, tokenizer, prompts, **kwargs)
    alone = [generate_batch(model, tokenizer, [p], **kwargs)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in alone]
    # sampled per row, with its own seed and settings: the same in a batch as alone
    rows = [RowSampling(1.0, 0.9, 7), RowSampling(0.7, 1.0, 8), RowSampling(0.0, 1.0, 9)]
    batched = generate_batch(model, tokenizer, prompts, **kwargs, rows=rows)
    alone = [generate_batch(model, tokenizer, [p], **kwargs, rows=[r])[0] for p, r in zip(prompts, rows, strict=True)]
    assert [g.text for g in batched] == [g.text for g in alone] and any(g.text for g in batched)


def test_terminal_chat_goes_through_the_engine(engine: Engine) -> None:
    from wechat_avatar.chat import ChatSession

    session = ChatSession(engine, "胡三行", AvatarConfig().chat.model_copy(update={"temperature": 0.0,
                                                                                 "max_new_tokens": 6}))  # fmt: skip
    persona, before = engine.persona, engine.batches
    said = session.say("在吗")
    alone = engine.reply(persona.prompt([persona.line(False, "胡三行", "在吗")]), Sampling(6, 0.0, 0.9, 0))
    assert said == alone.bubbles and engine.batches == before + 2
    assert [(line.is_self, line.name, line.text) for line in session.lines] == [
        (False, "胡三行", "在吗"), *((True, persona.name, b) for b in said)]  # fmt: skip


def test_the_rate_limiter_forgets_callers_silent_for_a_minute() -> None:
    load = Load()
    load.calls["gone"].extend([0.0, 10.0])
    load.calls["recent"].append(95.0)
    load.sweep(100.0)
    assert set(load.calls) == {"recent"}
    load.calls["gone"].append(101.0)
    load.sweep(150.0)  # within a minute of the last sweep: nothing is walked
    assert set(load.calls) == {"recent", "gone"}
    load.sweep(160.0)
    assert set(load.calls) == {"gone"}


def test_a_stream_whose_client_leaves_before_its_turn_is_never_generated(workspace: Workspace, engine: Engine,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    release, started, submitted, generated = threading.Event(), threading.Event(), [], []

    class Held(Engine):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            submitted.append(future := super().submit(*args, **kwargs))
            return future

        def generate(self, conversations: list[Any], sampling: Any, watchers: Any = None) -> list[Generated]:
            generated.append(len(conversations))
            started.set()
            release.wait(30)
            return [Generated("好", 5, 1, "stop") for _ in conversations]

    held = Held(engine.loaded, engine.persona, max_batch=1)
    try:
        with running(build_app(settings(workspace, tmp_path / "s.db"), held)) as url, ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"})
            assert started.wait(30)  # the worker is busy with the first reply; the stream below queues
            conn = http.client.HTTPConnection(*url.removeprefix("http://").split(":"), timeout=30)
            conn.request("POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}],
                         "stream": True}), {"Content-Type": "application/json"})  # fmt: skip
            assert conn.getresponse().status == 200
            conn.close()  # the client gives up while its reply is still queued
            for _ in range(600):
                if len(submitted) == 2 and submitted[1].cancelled():
                    break
                time.sleep(0.05)
            release.set()
            assert first.result()[0] == 200
    finally:
        release.set()
        held.close()
    assert submitted[1].cancelled()
    assert generated == [1]  # the first reply only: the abandoned one was dropped, not generated
