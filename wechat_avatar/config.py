"""avatar.yaml: one validated config for every stage. Each knob is documented where declared.

CLI flags override the file; `wechat-avatar init` writes a commented copy of the defaults.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wechat_avatar.errors import ConfigError

# Categories dropped from training by default: they are not things the person "said".
DEFAULT_DROP = ["system", "revoke", "pat", "voip", "friend_request", "status_op"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestConfig(Section):
    """Reading exports into the canonical store (`wechat-avatar ingest`)."""

    imei: str = Field(
        "1234567890ABCDEF",
        description="IMEI used to derive the EnMicroMsg.db key. WeChat on most phones and emulators "
        "uses the dummy 1234567890ABCDEF; try your real IMEI if that fails.",
    )
    uin: str | None = Field(
        None,
        description="Your WeChat uin (from shared_prefs/system_config_prefs.xml, 'default_uin'). "
        "Not needed if a shared_prefs folder is ingested alongside the database.",
    )
    key: str | None = Field(
        None, description="The 7-hex-char database key, if you already know it (overrides imei/uin)."
    )
    timezone: str = Field(
        "Asia/Shanghai",
        description="Your local time zone (IANA name): how exports' local-time strings are read and "
        "how times are shown.",
    )
    render_workers: int = Field(
        2,
        ge=0,
        le=32,
        description="Processes that map and render messages while ingest reads and writes, for inputs "
        "of 20k+ messages (0 = do it all in the ingest process). Two keep a 2-core laptop busy.",
    )
    batch_size: int = Field(2000, ge=1, le=100_000, description="Messages written per INSERT batch.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Asia/Shanghai") from None
        return value


class RenderConfig(Section):
    """How each message type becomes text (see the table in wechat_avatar/render.py)."""

    placeholders: dict[str, str] = Field(
        default_factory=dict,
        description="Override a category's placeholder, e.g. {image: '[图片]'}. "
        "Categories and defaults: `wechat-avatar types`.",
    )
    drop: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DROP),
        description="Categories marked 'dropped': kept in chat.db, never used for training.",
    )
    quote_context: bool = Field(
        False,
        description="Append the quoted message to a quote reply as 「name: text」 (the seed kept only the reply).",
    )
    max_chars: int = Field(
        4000, ge=16, le=1_000_000, description="Rendered text longer than this is cut (raw content is kept)."
    )

    @field_validator("placeholders", "drop")
    @classmethod
    def _known_categories(cls, value: Any) -> Any:
        from wechat_avatar.render import CATEGORIES  # render imports this module; import late

        names = value.keys() if isinstance(value, dict) else value
        unknown = sorted(set(names) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {', '.join(sorted(CATEGORIES))}")
        return value


class AvatarConfig(Section):
    """The whole avatar.yaml."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)


def load_config(path: Path | None) -> AvatarConfig:
    """Load and validate avatar.yaml; a missing path means defaults."""
    if path is None:
        return AvatarConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sections (ingest:, render:, …)")
    try:
        return AvatarConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{path}: {where}: {first['msg']}", hint="`wechat-avatar init` writes a documented example"
        ) from err


def commented_yaml(model: BaseModel, indent: int = 0) -> str:
    """Dump a config with each field's description as a comment above it."""
    pad = " " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            lines += ["", f"{pad}# {doc}", f"{pad}{name}:", commented_yaml(value, indent + 2).rstrip("\n")]
            continue
        if field.description:
            lines += [f"{pad}# {line}" for line in textwrap.wrap(field.description, 96 - indent)]
        dumped = yaml.safe_dump({name: value}, allow_unicode=True, default_flow_style=False, sort_keys=False)
        lines += [pad + line for line in dumped.rstrip("\n").splitlines()]
    return "\n".join(lines).lstrip("\n") + "\n"
