"""Which reply engine serves: `serve.batching` picks continuous batching or micro-batching over `generate`."""

from __future__ import annotations

from pathlib import Path

from wechat_avatar.config import AvatarConfig
from wechat_avatar.models.load import load_for_inference
from wechat_avatar.serve.continuous import ContinuousEngine
from wechat_avatar.serve.engine import Engine, Persona
from wechat_avatar.workspace import Workspace


def open_engine(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None) -> Engine | ContinuousEngine:
    """The engine `serve` and `chat` reply through, with the model loaded (and warmed up, for continuous)."""
    if cfg.serve.batching == "micro":
        return Engine.open(workspace, cfg, adapter)
    loaded = load_for_inference(workspace, cfg, adapter or workspace.trained_adapter())
    return ContinuousEngine.open(loaded, Persona.of(workspace, cfg), cfg.serve)
