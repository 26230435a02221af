"""Which reply engine serves: `serve.backend` picks this process or a vLLM server, and for this process
`serve.batching` picks continuous batching or micro-batching over `generate`."""

from __future__ import annotations

from pathlib import Path

from wechat_avatar.config import AvatarConfig
from wechat_avatar.errors import UsageError
from wechat_avatar.models.load import load_for_serving
from wechat_avatar.serve.continuous import ContinuousEngine
from wechat_avatar.serve.engine import Backend, Engine, Persona
from wechat_avatar.serve.vllm import VLLMEngine
from wechat_avatar.workspace import Workspace


def open_engine(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None, model: Path | None = None,
                *, load_in_4bit: bool = False) -> Backend:  # fmt: skip
    """The engine `serve` and `chat` reply through, with the model loaded (and warmed up, for continuous):
    base + `adapter` (default: the trained SFT adapter), or an export folder `model`."""
    if cfg.serve.backend == "vllm":
        if model or load_in_4bit:
            raise UsageError("--model and --load-in-4bit are for the local backend: vLLM loads its own model",
                             hint="start vLLM on an export folder (`vllm serve DIR`), pass --vllm-model")  # fmt: skip
        return VLLMEngine.open(workspace, cfg, adapter)
    if cfg.serve.batching == "micro":
        return Engine.open(workspace, cfg, adapter, model, load_in_4bit=load_in_4bit)
    loaded = load_for_serving(workspace, cfg, adapter, model, load_in_4bit=load_in_4bit)
    return ContinuousEngine.open(loaded, Persona.of(workspace, cfg), cfg.serve)
