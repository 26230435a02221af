"""The SFT loss, computed only where there is something to learn.

A causal LM computes logits for every position, but only the avatar's reply tokens carry
loss (often a third of a chat sample). Here the decoder's hidden states are projected onto
the vocabulary only at those positions: less compute, and far less memory with a large
vocabulary (Qwen's 151k logits for 8 x 1024 tokens are 5 GB in fp32). Written by hand:
transformers' `logits_to_keep` selects the same positions in every row, and packed rows
have their replies in different places.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from wechat_avatar.train.data import IGNORE


def reply_loss(model: Any, inputs: dict[str, torch.Tensor], num_items: int | torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy of next-token predictions at labelled positions; summed / num_items when given
    (the Trainer's count over all accumulated micro-batches, so accumulation matches one big batch)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoded = causal_lm.get_decoder()(input_ids=inputs["input_ids"], position_ids=inputs.get("position_ids"),
                                      attention_mask=inputs.get("attention_mask"), use_cache=False)  # fmt: skip
    hidden = decoded.last_hidden_state
    # position t predicts token t+1; a sample's first token is never a target, so rows pack safely
    targets = inputs["labels"][:, 1:]
    keep = targets != IGNORE
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    if num_items is None:
        return F.cross_entropy(logits, targets[keep])
    return F.cross_entropy(logits, targets[keep], reduction="sum") / num_items


class ReplyLossTrainer(Trainer):
    """transformers' Trainer with `reply_loss`. Under a distributed wrapper (DDP, FSDP, DeepSpeed) the
    model must run through the wrapper's own forward, so the plain full-logits loss is used there."""

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: int | torch.Tensor | None = None) -> Any:  # fmt: skip
        if self.accelerator.unwrap_model(model) is not model:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = reply_loss(model, inputs, num_items_in_batch)
        return (loss, {"loss": loss}) if return_outputs else loss
