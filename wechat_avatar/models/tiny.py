"""builtin:tiny-qwen2 — a small random-init Qwen2 on Qwen2's real vocabulary (trimmed to your corpus).

There is no hub here, so the CPU preset grows its own base model: this module builds it;
`train/pretrain.py` teaches it to speak on the training split before SFT starts from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wechat_avatar.config import TinyModelConfig

if TYPE_CHECKING:
    from transformers import Qwen2ForCausalLM

BUILD_FILE = "build.json"  # written beside the weights: config, dataset hash, loss, fingerprint


def tokenizer_for(cfg: TinyModelConfig, texts: list[str]) -> Any:
    """Qwen2's tokenizer: cut to the tokens `texts` use (fast on a CPU), or whole."""
    from wechat_avatar.models import qwen_tokenizer

    return qwen_tokenizer.trimmed(texts) if cfg.vocab == "trimmed" else qwen_tokenizer.full()


def random_model(cfg: TinyModelConfig, tokenizer: Any) -> Qwen2ForCausalLM:
    """A random-init Qwen2 of cfg's shape over the tokenizer's vocabulary (seeded by cfg.seed)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.hidden_size * 2,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=4096, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
