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

IGNORE = -100  # the label that carries no loss (Hugging Face's convention)


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
    import torch.nn.functional as F

    from wechat_avatar.train.data import encode_conversation

    encoded = [encode_conversation(tokenizer, list(messages), max_length, loss_on="last") for messages in conversations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # similar lengths in a batch: less padding to run through the model
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        batch = [encoded[i] for i in order[start : start + batch_size]]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        labels = torch.tensor([lab + [IGNORE] * (width - len(lab)) for _, lab in batch], device=device)
        mask = torch.tensor([[1] * len(ids_) + [0] * (width - len(ids_)) for ids_, _ in batch], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
        # position t predicts token t + 1
        shifted = labels[:, 1:]
        loss = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        total += float(loss)
        count += int((shifted != IGNORE).sum())
        if advance:
            advance(len(batch))
    if not count:  # nothing to score (every reply cut off): None, as JSON has no NaN
        return {"perplexity": None, "nll": None, "tokens": 0}
    nll = total / count
    return {"perplexity": math.exp(min(nll, 700.0)), "nll": nll, "tokens": count}  # 700: exp stays a float
