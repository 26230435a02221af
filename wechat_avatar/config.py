"""avatar.yaml: one validated config for every stage. Each knob is documented where declared.

CLI flags override the file; `wechat-avatar init` writes a commented copy of the defaults.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Literal
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


SEED_SYSTEM_PROMPT = "请你扮演一位微信用户“{name}”，并根据聊天记录以及不同用户的输入作出响应。"
DATASET_FORMATS = ("firefly", "messages", "sharegpt")
DEFAULT_FILLERS = ["好", "好的", "嗯", "嗯嗯", "哦", "哦哦", "ok", "OK", "好吧", "行", "可以", "收到",
                   "哈哈", "哈哈哈", "哈哈哈哈", "[表情包]"]  # fmt: skip


class DatasetConfig(Section):
    """Turning chat.db into training samples (`wechat-avatar dataset`)."""

    context_window: int = Field(
        10, ge=1, le=200, description="A reply sees at most this many previous messages (the seed's 10)."
    )
    session_gap_hours: float = Field(
        6.0,
        ge=0,
        description="A gap longer than this starts a new conversation session; a reply never sees across "
        "it. 0 = never split (the seed's behaviour).",
    )
    system_prompt: str = Field(
        SEED_SYSTEM_PROMPT, description="Persona prompt; {name} is your nickname. Default: the seed's."
    )
    formats: list[Literal["firefly", "messages", "sharegpt"]] = Field(
        default_factory=lambda: list(DATASET_FORMATS),
        description="Formats to write: firefly (the seed's), messages (OpenAI chat), sharegpt.",
    )
    test_ratio: float = Field(0.1, ge=0, lt=1, description="Share of conversation sessions held out for evaluation.")
    include_groups: bool = Field(True, description="Learn from your replies in group chats too.")
    exclude_chats: list[str] = Field(
        default_factory=list, description="Chats to leave out, by wxid, room id, remark or nickname."
    )
    only_chats: list[str] = Field(default_factory=list, description="If set, use only these chats.")
    drop_placeholder_replies: bool = Field(
        False, description="Drop samples whose reply is only placeholders ([表情包], [手机图片], …)."
    )
    max_samples_per_chat: int = Field(
        0, ge=0, description="Keep at most this many samples per chat, the most recent (0 = no cap)."
    )
    dedupe_filler: bool = Field(
        True, description="Keep one copy of samples whose filler reply and last message are identical."
    )
    filler_replies: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FILLERS), description="Replies that count as filler."
    )
    blocked_words: list[str] = Field(default_factory=list, description="Words never to train on.")
    blocked_action: Literal["mask", "drop"] = Field(
        "mask", description="mask: replace blocked words with *; drop: drop samples whose reply has one."
    )
    mark_profanity: bool = Field(
        True, description="Tag samples with rude replies in meta.jsonl (kept; the RLHF stage uses the tag)."
    )

    @field_validator("system_prompt")
    @classmethod
    def _prompt_fields(cls, value: str) -> str:
        try:
            value.format(name="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"only {{name}} may appear in braces ({err}); write {{{{ }}}} for a literal brace"
            ) from None
        return value


class AvatarConfig(Section):
    """The whole avatar.yaml."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)


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
