"""Replies from a model: chat template in, bubbles out. Shared by eval, chat and serving."""

from __future__ import annotations

from typing import Any

BUBBLE = "<s>"  # the dataset joins a reply's consecutive messages with it


def bubbles(reply: str) -> list[str]:
    return [b.strip() for b in reply.split(BUBBLE) if b.strip()]


def stop_ids(tokenizer: Any) -> list[int]:
    """End-of-turn tokens: the tokenizer's eos plus ChatML's, where the vocabulary has them."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)


def generate_replies(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int = 48,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int = 0,
    batch_size: int = 8,
    max_prompt_tokens: int = 1024,
) -> list[str]:
    """One reply per conversation (each ends with a user turn); bubbles joined by <s>.

    temperature 0 is greedy. Prompts longer than max_prompt_tokens lose their oldest tokens.
    """
    import torch

    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    tokenizer.truncation_side = "left"
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}  # fmt: skip
    torch.manual_seed(seed)
    replies: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        batch = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False,
                          truncation=True, max_length=max_prompt_tokens).to(device)  # fmt: skip
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, eos_token_id=stop_ids(tokenizer),
                                 pad_token_id=tokenizer.pad_token_id, **sampling)  # fmt: skip
        new = out[:, batch["input_ids"].shape[1] :]
        replies += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return replies
