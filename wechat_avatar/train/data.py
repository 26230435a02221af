"""Training samples: conversations of the dataset's `messages` split, tokenized with the model's chat template.

Loss falls only on the avatar's turns. Labels come from character spans rather than from a
`{% generation %}` template marker, because most hub models' templates lack that marker: each
assistant turn's span is where the template's text for messages[:i+1] extends the text for
messages[:i] + generation prompt; tokens inside a span keep their id, all others get -100.
"""

from __future__ import annotations

from typing import Any

from wechat_avatar.errors import DatasetError

IGNORE = -100  # the label PyTorch's cross-entropy skips


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation as template text, and the character span of each assistant turn."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        turn = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (turn.startswith(prompt) and text.startswith(turn)):
            raise DatasetError("the model's chat template does not render conversations prefix by prefix",
                               hint="set a ChatML template on the tokenizer, or use a chat model")  # fmt: skip
        spans.append((len(prompt), len(turn)))
    return text, spans


def encode_conversation(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None = None, loss_on: str = "all"
) -> tuple[list[int], list[int]]:
    """input_ids and labels: -100 everywhere except the assistant turns (or only the last one).

    A sequence longer than max_length loses its start, so the reply being learnt survives.
    """
    text, spans = assistant_spans(tokenizer, messages)
    if loss_on == "last":
        spans = spans[-1:]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    labels = [IGNORE] * len(ids)
    span_index = 0
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and start >= spans[span_index][0] and end <= spans[span_index][1]:
            labels[position] = ids[position]
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels
