"""`serve --backend vllm` against a loopback stub of vLLM's OpenAI server.

The stub is a real HTTP server (http.server on a free port) that records every request and answers
in the shapes vLLM 0.32 answers with (taken from a real vLLM on these machines): /v1/models with
the base and the LoRA module, /v1/completions plain and streamed with usage, /health, its errors.
What reaches vLLM (the prompt's token ids, sampling, stops) and what our API makes of the answer
(bubbles, history, the OpenAI stream, 502/503 errors) are checked; the real vLLM is
tests/test_vllm_real.py (`make test-vllm`).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_serve import call, error_of, openai_client, running

from wechat_avatar.config import AvatarConfig, ServeConfig, load_config
from wechat_avatar.errors import BackendError
from wechat_avatar.generate import prompt_ids, stop_ids
from wechat_avatar.serve.app import Settings, build_app
from wechat_avatar.serve.engine import Engine, Sampling
from wechat_avatar.serve.friends import Friends
from wechat_avatar.serve.vllm import VLLMEngine
from wechat_avatar.workspace import Workspace

BASE = "/models/tiny-qwen2"
FINGERPRINT = "vllm-0.32.0-9713a167"
MOM = "wxid_y9g6r1pt1q7t9v"  # remark 老妈 in the synthetic export


class StubVLLM:
    """A vLLM OpenAI server's HTTP surface. `requests` holds (method, path, headers, JSON body) as received.

    Every completion answers `text`, streamed in `pieces` when asked to stream; `fail` (status, body)
    answers every POST with that error instead; `served` is what /v1/models lists."""

    def __init__(self, served: tuple[str, ...] = (BASE, "sft"), key: str | None = None) -> None:
        self.served, self.key = served, key
        self.text, self.pieces, self.finish = " 好<s>开冲 ", [" 好", "<s>", "开", "冲 "], "stop"
        self.usage = {"prompt_tokens": 0, "completion_tokens": 5}  # prompt_tokens: the prompt's length
        self.fail: tuple[int, dict[str, Any]] | None = None
        self.fail_mid_stream = False
        self.pause = 0.2  # seconds between streamed events
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub.record(self, None)
                if not stub.authorised(self):
                    return
                if self.path == "/health":
                    return self.answer(200, b"")
                if self.path == "/v1/models":
                    return self.answer(200, stub.models())
                self.answer(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.record(self, body)
                if not stub.authorised(self):
                    return
                if stub.fail:
                    return self.answer(*stub.fail)
                if body.get("stream"):
                    return self.stream(body)
                self.answer(200, stub.completion(body))

            def answer(self, status: int, body: dict[str, Any] | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.end_headers()  # no length: the stream ends when the connection closes, as an SSE stream may
                self.close_connection = True
                for event in stub.events(body):
                    self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(stub.pause)  # as a model decodes: our API streams each piece as it comes
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        self.requests.append((handler.command, handler.path, dict(handler.headers), body))

    def authorised(self, handler: Any) -> bool:
        if self.key and handler.headers.get("Authorization") != f"Bearer {self.key}":
            handler.answer(401, {"error": "Unauthorized"})  # vLLM's own --api-key refusal
            return False
        return True

    def completions(self) -> list[dict[str, Any]]:
        return [body for method, path, _, body in self.requests if path == "/v1/completions"]

    def models(self) -> dict[str, Any]:
        def card(name: str) -> dict[str, Any]:
            lora = name != BASE
            permission = {"id": "modelperm-bea1c598d63ae5d2", "object": "model_permission", "created": 1796345211,
                          "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                          "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                          "organization": "*", "group": None, "is_blocking": False}  # fmt: skip
            return {"id": name, "object": "model", "created": 1796345211, "owned_by": "vllm",
                    "root": f"/adapters/{name}" if lora else BASE, "parent": BASE if lora else None,
                    "max_model_len": None if lora else 1024, "permission": [permission]}  # fmt: skip

        return {"object": "list", "data": [card(name) for name in self.served]}

    def usage_for(self, body: dict[str, Any]) -> dict[str, int]:
        prompt, completion = len(body["prompt"]), self.usage["completion_tokens"]
        return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "text": self.text, "logprobs": None, "finish_reason": self.finish,
                  "stop_reason": None, "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None,
                  "routed_experts": None}  # fmt: skip
        usage = {**self.usage_for(body), "prompt_tokens_details": None, "completion_tokens_details": None}
        return {"id": "cmpl-bde9743364572b3f", "object": "text_completion", "created": 1796345329,
                "model": body["model"], "choices": [choice], "service_tier": None,
                "system_fingerprint": FINGERPRINT, "usage": usage, "kv_transfer_params": None,
                "ec_transfer_params": None, "metrics": None}  # fmt: skip

    def events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Text deltas, then an empty one with the finish_reason, then usage (choices empty) if asked."""
        head = {"id": "cmpl-b50aa51a3a890caf", "object": "text_completion", "created": 1796345329,
                "model": body["model"]}  # fmt: skip

        def choice(text: str, finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                    "prompt_token_ids": None, "token_ids": None}  # fmt: skip

        for i, piece in enumerate(self.pieces):
            if self.fail_mid_stream and i == 2:
                yield {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError",
                                 "param": None, "code": 500}}  # fmt: skip
                return
            yield {**head, "choices": [choice(piece)]}
        yield {**head, "choices": [choice("", self.finish)]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**head, "choices": [], "usage": self.usage_for(body), "system_fingerprint": FINGERPRINT}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def stub_vllm(**kwargs: Any) -> Iterator[StubVLLM]:
    stub = StubVLLM(**kwargs)
    try:
        yield stub
    finally:
        stub.close()


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("vllm") / "workspace"))


@pytest.fixture(scope="module")
def cfg(tiny_config: Path) -> AvatarConfig:
    return load_config(tiny_config)


@pytest.fixture
def stub() -> Iterator[StubVLLM]:
    with stub_vllm() as stub:
        yield stub


def vllm_engine(workspace: Workspace, cfg: AvatarConfig, url: str, **serve: Any) -> VLLMEngine:
    s = cfg.serve.model_copy(update={"backend": "vllm", "vllm_url": url, **serve})
    return VLLMEngine.open(workspace, cfg.model_copy(update={"serve": s}), None)


@contextmanager
def api(workspace: Workspace, engine: VLLMEngine, state: Path, **serve: Any) -> Iterator[str]:
    """Our API with `engine` behind it, on a free loopback port."""
    settings = Settings(ServeConfig(temperature=0.0, **serve), state, Friends.of(workspace))
    try:
        with running(build_app(settings, engine)) as url:
            yield url
    finally:
        engine.close()


# --- what reaches vLLM ---------------------------------------------------------------------------------------------


def test_the_prompt_is_the_local_engines_token_for_token(workspace: Workspace, cfg: AvatarConfig,
                                                         stub: StubVLLM) -> None:  # fmt: skip
    local = Engine.open(workspace, cfg, None)
    fed: list[list[int]] = []
    hook = local.loaded.model.register_forward_pre_hook(  # the adapter is folded in: a plain causal LM
        lambda _, args, kwargs: fed.append(kwargs["input_ids"][0].tolist()) if not fed else None, with_kwargs=True
    )  # the ids the local model's first forward pass is given: the whole prompt
    persona = local.persona
    conversation = persona.prompt([persona.line(False, "老妈", "在吗"), persona.line(True, persona.name, "在<s>咋了"),
                                   persona.line(False, "老妈", "吃饭去？\n老地方")])  # fmt: skip
    try:
        local.reply(conversation, Sampling(1, 0.0, 1.0, 0))
    finally:
        hook.remove()
        local.close()
    remote = vllm_engine(workspace, cfg, stub.url)
    try:
        remote.reply(conversation, Sampling(4, 0.0, 1.0, 0))
    finally:
        remote.close()
    sent = stub.completions()[0]["prompt"]
    assert sent == fed[0] and len(sent) > 20
    # and the text it stands for is the chat template's rendering, the system prompt first
    text = remote.tokenizer.decode(sent)
    assert text.startswith("<|im_start|>system\n" + persona.system) and text.endswith("<|im_start|>assistant\n")
    assert "老妈:吃饭去？" in text


def test_sampling_and_stops_are_translated(workspace: Workspace, cfg: AvatarConfig, stub: StubVLLM) -> None:
    engine = vllm_engine(workspace, cfg, stub.url, vllm_model="sft", seed=100)
    conversation = engine.persona.prompt([engine.persona.line(False, "胡三行", "在吗")])
    stub.finish, stub.text, stub.pieces, stub.pause = "length", "嗯<s>", ["嗯", "<s>"], 0.0
    heard: list[str] = []
    try:
        seeded = engine.reply(conversation, Sampling(7, 0.5, 0.8, 11))
        unseeded = [engine.reply(conversation, Sampling(3, 1.0, 1.0, None)) for _ in range(2)]
        streamed = engine.submit(conversation, Sampling(4, 0.0, 1.0, 0), heard.append).result()
    finally:
        engine.close()
    first = stub.completions()[0]
    stops = stop_ids(engine.tokenizer)
    assert engine.tokenizer.convert_tokens_to_ids("<|im_end|>") in stops
    assert {k: v for k, v in first.items() if k != "prompt"} == {
        "model": "sft", "max_tokens": 7, "temperature": 0.5, "top_p": 0.8, "top_k": 0, "min_p": 0.0, "seed": 11,
        "stop_token_ids": stops, "skip_special_tokens": True, "stream": False}  # fmt: skip
    assert [body["seed"] for body in stub.completions()[1:3]] == [100, 101]  # the engine's seed + the request's number
    assert seeded.bubbles == ["嗯"] and seeded.finish_reason == "length"  # vLLM's usage, not ours
    assert (seeded.prompt_tokens, seeded.completion_tokens) == (len(first["prompt"]), 5)
    assert heard == ["嗯", "嗯<s>"] and streamed == seeded  # on_text hears the text so far after each piece
    assert stub.completions()[-1]["stream_options"] == {"include_usage": True}
    assert len(unseeded) == 2 and engine.batches == 4 and engine.describe() == f"vLLM at {stub.url}, model sft ({BASE})"


def test_prompts_past_max_prompt_tokens_lose_their_oldest_tokens(workspace: Workspace, cfg: AvatarConfig,
                                                                 stub: StubVLLM) -> None:  # fmt: skip
    engine = vllm_engine(workspace, cfg, stub.url, max_prompt_tokens=32)
    conversation = engine.persona.prompt([engine.persona.line(False, "胡三行", "在吗" * 40)])
    try:
        engine.reply(conversation, Sampling(2, 0.0, 1.0, 0))
    finally:
        engine.close()
    sent = stub.completions()[0]["prompt"]
    assert sent == prompt_ids(engine.tokenizer, conversation, 10_000)[-32:]


# --- our API in front ----------------------------------------------------------------------------------------------


def test_native_history_and_bubbles_through_vllm(workspace: Workspace, cfg: AvatarConfig, stub: StubVLLM,
                                                 tmp_path: Path) -> None:  # fmt: skip
    engine = vllm_engine(workspace, cfg, stub.url)
    persona = engine.persona
    with api(workspace, engine, tmp_path / "s.db") as url:
        status, _, body = call(url, "POST", "/v1/avatar/reply", {"friend": "老妈", "messages": ["在吗", "吃饭去？"]})
        first = json.loads(body)
        second = json.loads(call(url, "POST", "/v1/avatar/reply", {"friend": MOM, "message": "几点"})[2])
        kept = json.loads(call(url, "GET", f"/v1/avatar/friends/{MOM}/history")[2])["messages"]
        health = json.loads(call(url, "GET", "/healthz")[2])
    assert status == 200 and first["bubbles"] == ["好", "开冲"] == second["bubbles"]
    assert first["usage"] == {"prompt_tokens": len(stub.completions()[0]["prompt"]), "completion_tokens": 5,
                              "total_tokens": len(stub.completions()[0]["prompt"]) + 5}  # fmt: skip
    assert [(m["role"], m["text"]) for m in kept] == [
        ("friend", "在吗"), ("friend", "吃饭去？"), ("avatar", "好"), ("avatar", "开冲"), ("friend", "几点"),
        ("avatar", "好"), ("avatar", "开冲")]  # fmt: skip
    # the second prompt holds the first exchange, as the dataset would have written it
    lines = [persona.line(False, "老妈", "在吗"), persona.line(False, "老妈", "吃饭去？"),
             persona.line(True, persona.name, "好"), persona.line(True, persona.name, "开冲"),
             persona.line(False, "老妈", "几点")]  # fmt: skip
    assert stub.completions()[1]["prompt"] == prompt_ids(engine.tokenizer, persona.prompt(lines), 1024)
    assert health["backend"] == "vllm" and health["status"] == "ok" and health["model_loaded"] is True


@pytest.mark.parametrize("mode", ["newline", "keep"])
def test_openai_plain_and_stream_through_vllm(workspace: Workspace, cfg: AvatarConfig, stub: StubVLLM,
                                              tmp_path: Path, mode: str) -> None:  # fmt: skip
    engine = vllm_engine(workspace, cfg, stub.url)
    asked = {"model": "x", "messages": [{"role": "user", "content": "走吗"}], "max_tokens": 9, "seed": 3}
    with api(workspace, engine, tmp_path / "s.db", bubble_mode=mode) as url:
        client = openai_client(url)
        whole = client.chat.completions.create(**asked)
        chunks = list(client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True}))
    joined = "好<s>开冲" if mode == "keep" else "好\n开冲"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert whole.choices[0].message.content == joined == "".join(deltas) and len(deltas) > 1  # streamed, in pieces
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert whole.usage.completion_tokens == 5 and whole.usage.prompt_tokens == len(stub.completions()[0]["prompt"])
    plain, streamed = stub.completions()
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert plain["stream"] is False and "stream_options" not in plain
    assert plain["prompt"] == streamed["prompt"] and (plain["max_tokens"], plain["seed"]) == (9, 3)


def test_the_vllm_api_key_comes_from_the_environment(workspace: Workspace, cfg: AvatarConfig, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with stub_vllm(key="vllm-secret") as stub:
        monkeypatch.delenv("VLLM_API_KEY", raising=False)
        with pytest.raises(BackendError, match="answered 401: Unauthorized") as refused:
            vllm_engine(workspace, cfg, stub.url)
        assert "VLLM_API_KEY" in refused.value.hint
        monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")
        engine = vllm_engine(workspace, cfg, stub.url)
        with api(workspace, engine, tmp_path / "s.db") as url:
            assert call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"})[0] == 200
    assert {headers.get("Authorization") for _, _, headers, _ in stub.requests[1:]} == {"Bearer vllm-secret"}


# --- errors ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vllm_unreachable_at_start_names_the_url_and_the_command(workspace: Workspace, tiny_config: Path) -> None:
    port = free_port()
    result = run_cli("serve", "-w", workspace.root, "-c", tiny_config, "--backend", "vllm", "--vllm-url",
                     f"http://127.0.0.1:{port}/v1")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert f"vLLM at http://127.0.0.1:{port} is unreachable" in message
    adapter, base = workspace.adapter().resolve(), workspace.tiny_model.resolve()
    assert (
        f"python -m vllm.entrypoints.openai.api_server --model {base} --enable-lora --lora-modules sft={adapter} "
        f"--max-lora-rank 16 --dtype float32 --max-model-len 1536 --host 127.0.0.1 --port {port}"
    ) in message


def test_an_adapter_vllm_does_not_serve_is_named_with_what_it_serves(workspace: Workspace, tiny_config: Path) -> None:
    with stub_vllm(served=(BASE, "alice", "bob")) as stub:
        result = run_cli("serve", "-w", workspace.root, "-c", tiny_config, "--backend", "vllm", "--vllm-url", stub.url,
                         "--vllm-model", "carol")  # fmt: skip
    message = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"vLLM at {stub.url} serves {BASE}, alice, bob, not 'carol'" in message


def test_backend_vllm_without_a_url_is_a_usage_error(workspace: Workspace, tiny_config: Path) -> None:
    result = run_cli("serve", "-w", workspace.root, "-c", tiny_config, "--backend", "vllm")
    assert result.returncode == 2 and "--backend vllm needs the vLLM server's address" in result.stderr
    bad = run_cli("serve", "-w", workspace.root, "-c", tiny_config, "--backend", "tgi")
    assert bad.returncode == 2 and "--backend" in bad.stderr and "Traceback" not in bad.stderr


def test_vllm_down_mid_run_is_a_503_and_healthz_says_so(workspace: Workspace, cfg: AvatarConfig,
                                                        tmp_path: Path) -> None:  # fmt: skip
    with stub_vllm() as stub:
        engine = vllm_engine(workspace, cfg, stub.url)
    # the stub is gone: vLLM went down after our server started
    with api(workspace, engine, tmp_path / "s.db") as url:
        native = call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"})
        plain = call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "在吗"}]})
        streamed = call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "在吗"}],
                                                              "stream": True})[2].decode()  # fmt: skip
        status, _, health = call(url, "GET", "/healthz")
        kept = json.loads(call(url, "GET", "/v1/avatar/friends/a/history")[2])["messages"]
    for answered in (native, plain):
        got, error = error_of(answered)
        assert got == 503 and error["code"] == "backend_unreachable" and error["type"] == "server_error"
        assert f"vLLM at {stub.url} is unreachable" in error["message"] and answered[1]["retry-after"] == "5"
    events = streamed.split("\n\n")
    assert events[-2] == "data: [DONE]" and "is unreachable" in json.loads(events[-3][6:])["error"]["message"]
    health = json.loads(health)
    assert status == 503 and health["status"] == "unavailable" and health["model_loaded"] is False
    assert f"vLLM at {stub.url} is unreachable" in health["error"]
    assert kept == []  # a reply that failed leaves no half exchange in the history


def test_vllm_erroring_is_a_502_with_its_message(workspace: Workspace, cfg: AvatarConfig, stub: StubVLLM,
                                                 tmp_path: Path) -> None:  # fmt: skip
    engine = vllm_engine(workspace, cfg, stub.url)
    with api(workspace, engine, tmp_path / "s.db") as url:
        stub.fail = (400, {"error": {"message": "This model's maximum context length is 1024 tokens.",
                                     "type": "BadRequestError", "param": None, "code": 400}})  # fmt: skip
        bad = error_of(call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"}))
        stub.fail = (500, {"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError",
                                     "param": None, "code": 500}})  # fmt: skip
        dead = error_of(call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "在吗"}]}))
        stub.fail, stub.fail_mid_stream = None, True
        streamed = call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "在吗"}],
                                                              "stream": True})[2].decode()  # fmt: skip
        stub.fail_mid_stream, stub.finish = False, "abort"
        aborted = error_of(call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"}))
        stub.finish = "stop"
        assert call(url, "POST", "/v1/avatar/reply", {"friend": "a", "message": "在吗"})[0] == 200  # it recovers
    assert bad[0] == 502 and bad[1]["code"] == "backend_error"
    assert bad[1]["message"] == f"vLLM at {stub.url} answered 400: This model's maximum context length is 1024 tokens."
    assert dead[0] == 502 and "answered 500: EngineCore encountered an issue." in dead[1]["message"]
    events = streamed.split("\n\n")
    assert json.loads(events[1][6:])["choices"][0]["delta"]["content"] == "好"  # what streamed before the failure
    assert events[-2] == "data: [DONE]" and "EngineCore" in json.loads(events[-3][6:])["error"]["message"]
    assert aborted[0] == 502 and "finish_reason 'abort'" in aborted[1]["message"]


def test_the_serve_command_in_front_of_vllm(workspace: Workspace, tiny_config: Path) -> None:
    """The real CLI: `serve --backend vllm` starts on the stub (its tokenizer only), answers, reports vLLM."""
    with stub_vllm() as stub:
        port = free_port()
        args = [sys.executable, "-m", "wechat_avatar", "serve", "-w", str(workspace.root), "-c", str(tiny_config),
                "--port", str(port), "--backend", "vllm", "--vllm-url", stub.url]  # fmt: skip
        server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    health = json.loads(call(url, "GET", "/healthz")[2])
                    break
                except OSError:
                    assert server.poll() is None, server.communicate()[1]
                    time.sleep(0.1)
            status, _, body = call(url, "POST", "/v1/avatar/reply", {"friend": "胡三行", "message": "在吗"})
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=30)
    assert health["backend"] == "vllm" and health["model"] == f"vLLM at {stub.url}, model sft ({BASE})"
    assert status == 200 and json.loads(body)["bubbles"] == ["好", "开冲"]
    assert f"vLLM at {stub.url}" in stderr and "Traceback" not in stderr
