"""Perplexity of the real replies: how surprised the model is by what the person actually wrote.

Loss on the final assistant turn's tokens only (`encode_conversation(..., loss_on="last")`), summed
over every test sample and divided by their token count before the exp: a token-level corpus
perplexity, so long replies weigh by their length, as in training. Runs on the same base model and
tokenizer compare; across tokenizers the numbers do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def reply_perplexity(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, str]]],
    *,
    batch_size: int = 4,
    max_length: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict[str, float | None]:
    """{"perplexity", "nll" (mean per reply token), "tokens"} over conversations ending in the real reply.

    A conversation longer than max_length tokens loses its start (as in training), never the reply."""
    import torch

    from wechat_avatar.train.data import IGNORE, encode_conversation
    from wechat_avatar.train.loss import reply_loss
    from wechat_avatar.train.packing import PackedCollator

    encoded = [encode_conversation(tokenizer, list(messages), max_length, loss_on="last") for messages in conversations]
    # the training collator and loss: the same padding, masking and reply-only logits as the loss trained on
    collate = PackedCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    # similar lengths in a batch: less padding to run through the model
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        rows = [{"input_ids": encoded[i][0], "labels": encoded[i][1]} for i in order[start : start + batch_size]]
        inputs = {key: value.to(device) for key, value in collate(rows).items()}
        with torch.no_grad():
            total += float(reply_loss(model, inputs, 1))  # num_items 1: the sum over reply tokens
        count += int((inputs["labels"][:, 1:] != IGNORE).sum())
        if advance:
            advance(len(rows))
    if not count:  # nothing to score (every reply cut off): None, as JSON has no NaN
        return {"perplexity": None, "nll": None, "tokens": 0}
    nll = total / count
    return {"perplexity": math.exp(min(nll, 700.0)), "nll": nll, "tokens": count}  # 700: exp stays a float
