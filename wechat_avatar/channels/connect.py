"""`wechat-avatar connect`: which channel module runs, and the kill switch."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

from wechat_avatar.config import ChannelsConfig
from wechat_avatar.errors import UsageError
from wechat_avatar.workspace import Workspace

CHANNELS = {
    "official-account": "wechat_avatar.channels.official_account",
    "wecom": "wechat_avatar.channels.wecom",
    "kf": "wechat_avatar.channels.kf",
    "clawbot": "wechat_avatar.channels.clawbot",
}


def connect(channel: str, workspace: Workspace, cfg: ChannelsConfig, say: Callable[[str], None]) -> None:
    """Run one channel until it is stopped (Ctrl-C or SIGTERM)."""
    if channel not in CHANNELS:
        raise UsageError(f"unknown channel {channel!r}", hint=f"pick one of {', '.join(CHANNELS)}")
    module = importlib.import_module(CHANNELS[channel])
    try:
        asyncio.run(module.start(workspace, cfg, say))
    except KeyboardInterrupt:
        say(f"{channel}: stopped")


def stop(workspace: Workspace) -> None:
    """Turn the kill switch on: every running channel stops answering at once, before its next send."""
    workspace.channel_stop.parent.mkdir(parents=True, exist_ok=True)
    workspace.channel_stop.write_text("stopped by `wechat-avatar connect --stop`\n", encoding="utf-8")


def resume(workspace: Workspace) -> bool:
    """Turn the kill switch off; False when it was not on."""
    if not workspace.channel_stop.exists():
        return False
    workspace.channel_stop.unlink()
    return True
