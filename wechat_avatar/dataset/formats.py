"""The three output formats, one small function each, from the same sample.

Each takes the sample's (user, assistant) text pairs (see `pairs`).

    firefly   the seed's: {"conversation_id", "category": "Conversation",
              "conversation": [{"human": "胡三行:对", "assistant": "乌冬面:好<s>开冲<s>[呲牙]"}]}
    messages  OpenAI chat: system prompt, user turns as `name:content` lines, assistant replies
              as bubbles joined by <s> (no name: the model should not learn to say its own)
    sharegpt  {"system", "conversations": [{"from": "human"|"gpt", "value"}]}
"""

from __future__ import annotations

import json
from typing import Any

from wechat_avatar.dataset.window import Candidate, Line


def user_text(turn: list[Line]) -> str:
    # one message per line: a newline inside a message would read as another speaker
    return "\n".join(f"{line.name}:{line.text.replace(chr(10), ' ')}" for line in turn)


def bubbles(turn: list[Line]) -> str:
    return "<s>".join(line.text for line in turn)


def pairs(sample: Candidate) -> list[tuple[str, str]]:
    """(user, assistant) pairs: the context's turns alternate, and the reply closes the last."""
    replies = [*sample.turns[1::2], sample.reply]
    return [(user_text(u), bubbles(a)) for u, a in zip(sample.turns[0::2], replies, strict=True)]


def firefly(turns: list[tuple[str, str]], conversation_id: int, self_name: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "category": "Conversation",
        "conversation": [{"human": u, "assistant": f"{self_name}:{a}"} for u, a in turns],
    }


def messages(turns: list[tuple[str, str]], system: str) -> dict[str, Any]:
    out = [{"role": "system", "content": system}]
    for u, a in turns:
        out += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"messages": out}


def sharegpt(turns: list[tuple[str, str]], system: str) -> dict[str, Any]:
    out = []
    for u, a in turns:
        out += [{"from": "human", "value": u}, {"from": "gpt", "value": a}]
    return {"system": system, "conversations": out}


# The same three records as JSON lines, assembled from turn texts that were JSON-encoded
# once: overlapping windows repeat turns, and json.dumps of every record re-encoded them
# (half the build time at 1M messages). Output is byte-identical to json.dumps(record,
# ensure_ascii=False) of the records above; test_dataset checks it.
encode = json.encoder.encode_basestring  # type: ignore[attr-defined]  # C: str -> "JSON string"


def firefly_line(turns: list[tuple[str, str]], conversation_id: int, self_name_json: str) -> str:
    """`turns` JSON-encoded; `self_name_json` is encode(self_name + ":") without its closing quote."""
    pairs_json = ", ".join(f'{{"human": {u}, "assistant": {self_name_json}{a[1:]}}}' for u, a in turns)
    return f'{{"conversation_id": {conversation_id}, "category": "Conversation", "conversation": [{pairs_json}]}}'


def messages_line(turns: list[tuple[str, str]], system_json: str) -> str:
    parts = [f'{{"role": "system", "content": {system_json}}}']
    for u, a in turns:
        parts += [f'{{"role": "user", "content": {u}}}', f'{{"role": "assistant", "content": {a}}}']
    return f'{{"messages": [{", ".join(parts)}]}}'


def sharegpt_line(turns: list[tuple[str, str]], system_json: str) -> str:
    parts = []
    for u, a in turns:
        parts += [f'{{"from": "human", "value": {u}}}', f'{{"from": "gpt", "value": {a}}}']
    return f'{{"system": {system_json}, "conversations": [{", ".join(parts)}]}}'
