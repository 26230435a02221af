"""Scalar heads on the causal LM's decoder: the reward model's score and the PPO critic's values.

The reward model is the base causal LM with a LoRA adapter plus a score head (hidden -> 1, no
bias, read at the last token: the head of transformers' *ForSequenceClassification*). It is
kept as a plain causal-LM adapter and a separate `score.safetensors` rather than as a
sequence-classification model, so that PPO can put the reward, critic, policy and reference
adapters on ONE base model in memory and read the decoder's hidden states once per role.

    reward adapter folder: adapter_config.json, adapter_model.safetensors (peft), score.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wechat_avatar.train.data import encode_conversation

HEAD_FILE = "score.safetensors"


class ScoreHead(nn.Module):
    """hidden -> one number per position (reward at the last token; values at every token)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1, bias=False)
        nn.init.normal_(self.linear.weight, std=hidden_size**-0.5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        save_file({"weight": self.linear.weight.detach().contiguous()}, str(folder / HEAD_FILE))

    @classmethod
    def load(cls, folder: Path) -> ScoreHead:
        from safetensors.torch import load_file

        weight = load_file(str(folder / HEAD_FILE))["weight"]
        head = cls(weight.shape[1])
        head.linear.weight.data.copy_(weight)
        return head


def bradley_terry(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected): minimised by rewarding the chosen reply MORE (the seed's
    train_reward.py had the difference the other way round, teaching the reward model to prefer
    the worse reply; tests/test_rlhf.py shows that loss failing)."""
    return -F.logsigmoid(chosen - rejected).mean()


def encode_reply(tokenizer: Any, messages: list[dict[str, str]], reply: str, max_length: int) -> tuple[list[int], int]:
    """Context + reply as the model's chat template writes them, and how many tokens were cut off the
    start of the context to fit max_length (the reply, at the end, is always kept whole if it fits)."""
    ids, _ = encode_conversation(tokenizer, [*messages, {"role": "assistant", "content": reply}])
    cut = max(0, len(ids) - max_length)
    return ids[cut:], cut


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask, padded on the right to the longest row."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def decoder_hidden(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   position_ids: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The decoder's last hidden states under the model's active adapter (no vocabulary projection)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    out = causal_lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False)  # fmt: skip
    return out.last_hidden_state


def score_rows(model: Any, head: ScoreHead, rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """One score per row: the head at each row's last real token. Shape [len(rows)]."""
    ids, mask = right_pad(rows, pad_id)
    device = next(head.parameters()).device
    hidden = decoder_hidden(model, ids.to(device), mask.to(device))
    last = mask.sum(1).to(device) - 1
    return head(hidden[torch.arange(len(rows), device=device), last])
