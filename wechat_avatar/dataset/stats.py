"""What a dataset build measured: the report and the terminal summary are drawn from this."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DatasetStats:
    """Counts and distributions of one `wechat-avatar dataset` run (all text pseudonymised)."""

    self_name: str = ""
    formats: list[str] = field(default_factory=list)
    store_messages: int = 0  # every message in chat.db
    used_messages: int = 0  # messages that appear in at least one written sample
    drop_reasons: Counter[str] = field(default_factory=Counter)  # message-level; used + sum == store_messages
    samples: Counter[str] = field(default_factory=Counter)  # {"train": n, "test": n}
    held_out_fallback: int = 0  # samples of the one session held out because test_ratio picked none
    samples_dropped: Counter[str] = field(default_factory=Counter)  # sample-level cleaning, by reason
    sessions: int = 0
    messages_per_chat: Counter[str] = field(default_factory=Counter)  # chat display name -> messages
    messages_per_category: Counter[str] = field(default_factory=Counter)
    activity_by_hour: list[int] = field(default_factory=lambda: [0] * 24)  # local time, all messages
    reply_bubbles: Counter[int] = field(default_factory=Counter)  # bubbles per written reply
    reply_chars: Counter[int] = field(default_factory=Counter)  # characters per written reply (<s> excluded)
    token_lengths: list[int] = field(default_factory=list)  # whole-sample tokens of a uniform sample (<= 2000)
    tokenizer: str = ""  # which tokenizer counted token_lengths
    pii_replaced: Counter[str] = field(default_factory=Counter)  # kind -> occurrences replaced
    pii_distinct: Counter[str] = field(default_factory=Counter)  # kind -> distinct values
    profane_samples: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # up to 10, OpenAI `messages` form

    @property
    def accounted(self) -> int:
        return self.used_messages + sum(self.drop_reasons.values())
