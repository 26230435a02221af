"""Replies from a model: chat template in, bubbles out. Shared by eval, chat and serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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


def prompt_text(tokenizer: Any, conversation: list[dict[str, str]]) -> str:
    """The conversation through the tokenizer's chat template, up to where the reply begins."""
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer: Any, conversation: list[dict[str, str]], max_prompt_tokens: int) -> list[int]:
    """The token ids `generate_batch` feeds the model for one conversation (a row without its padding):
    no special tokens added beyond the template's, the oldest tokens dropped past max_prompt_tokens."""
    tokenizer.truncation_side = "left"
    encoded = tokenizer(prompt_text(tokenizer, conversation), add_special_tokens=False, truncation=True,
                        max_length=max_prompt_tokens)  # fmt: skip
    return list(encoded["input_ids"])


class Generated(NamedTuple):
    """One reply with what it cost: usage for the OpenAI API, and why it ended."""

    text: str  # bubbles joined by <s>, stripped
    prompt_tokens: int
    completion_tokens: int  # new tokens up to and including the stop token
    finish_reason: str  # stop (a stop token ended it) | length (max_new_tokens did)


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

    torch.manual_seed(seed)
    replies: list[str] = []
    for start in range(0, len(conversations), batch_size):
        chunk = generate_batch(model, tokenizer, conversations[start : start + batch_size], seed=None,
                               max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                               max_prompt_tokens=max_prompt_tokens)  # fmt: skip
        replies += [g.text for g in chunk]
    return replies


def generate_batch(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    max_prompt_tokens: int = 1024,
    on_tokens: Callable[[list[list[int]]], None] | None = None,
    rows: list[RowSampling] | None = None,
) -> list[Generated]:
    """One forward-pass batch of replies with their token counts; `seed` None keeps torch's RNG as it is.

    `on_tokens`, if given, is called after every decoding step with each row's new tokens so far.
    `rows`, if given, samples each row with its own temperature, top_p and seed (and ignores the
    batch-wide three): a row's reply is then the same in any batch, as it would be alone."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    tokenizer.truncation_side = "left"
    prompts = [prompt_text(tokenizer, c) for c in conversations]
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {
        "do_sample": False}  # fmt: skip
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                      truncation=True, max_length=max_prompt_tokens).to(device)  # fmt: skip
    stops = stop_ids(tokenizer)
    streamer = _steps(len(prompts), on_tokens) if on_tokens else None
    if rows is not None:
        from transformers import LogitsProcessorList

        # our processor leaves one token per row possible; greedy decoding then takes it
        sampling = {"do_sample": False, "logits_processor": LogitsProcessorList([_row_sampler(rows)])}
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, eos_token_id=stops,
                             pad_token_id=tokenizer.pad_token_id, streamer=streamer, **sampling)  # fmt: skip
    new = out[:, batch["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, text, used in zip(new.tolist(), texts, prompt_tokens, strict=True):
        end = next((i for i, token in enumerate(row) if token in stops), None)
        finish = "stop" if end is not None else "length"
        results.append(Generated(text.strip(), int(used), len(row) if end is None else end + 1, finish))
    return results


class RowSampling(NamedTuple):
    temperature: float  # 0 = greedy
    top_p: float
    seed: int


def _row_sampler(rows: list[RowSampling]) -> Any:
    """A logits processor that picks each row's next token with that row's settings and its own
    random generator, and masks every other token: per-request sampling inside one batch."""
    import torch
    from transformers import LogitsProcessor

    generators = [torch.Generator().manual_seed(r.seed) for r in rows]

    class RowSampler(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            picked = torch.full_like(scores, float("-inf"))
            for i, (row, generator) in enumerate(zip(rows, generators, strict=True)):
                picked[i, _pick(scores[i].float().cpu(), row, generator)] = 0.0
            return picked

    return RowSampler()


def _pick(logits: Any, row: RowSampling, generator: Any) -> int:
    import torch

    if row.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / row.temperature, dim=-1)
    if row.top_p < 1:  # nucleus: the most likely tokens until their mass reaches top_p (the first always)
        ranked, order = probs.sort(descending=True)
        keep = ranked.cumsum(0) - ranked < row.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], ranked[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def reply_so_far(tokenizer: Any, row: list[int], stops: list[int]) -> str:
    """A row's text up to its first stop token (what `generate_batch` will return for it, unstripped)."""
    end = next((i for i, token in enumerate(row) if token in stops), len(row))
    return tokenizer.decode(row[:end], skip_special_tokens=True)


def _steps(rows: int, on_tokens: Callable[[list[list[int]]], None]) -> Any:
    """A transformers streamer that hands every step's tokens of a whole batch to `on_tokens`
    (transformers' own streamers take one sequence only)."""
    from transformers.generation.streamers import BaseStreamer

    class Steps(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False
            self.rows: list[list[int]] = [[] for _ in range(rows)]

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate puts the prompt first, then one token per row per step
                self.prompt_seen = True
                return
            for row, token in zip(self.rows, value.view(-1).tolist(), strict=True):
                row.append(token)
            on_tokens(self.rows)

        def end(self) -> None:
            pass

    return Steps()
