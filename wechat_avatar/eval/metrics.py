"""Text metrics on replies, pure functions on lists of strings. A reply joins its bubbles with `<s>`.

Tokens (`tokenize`): jieba words, with two kinds of placeholder kept whole — bracket codes like
`[呲牙]`, `[表情包]`, `[手机图片]` and pseudonyms like `<PHONE_1>` (jieba would cut them into
`[`, `呲`, `牙`, `]`). Whitespace is not a token.

The bubble separator `<s>` **is one token for BLEU and ROUGE**: splitting a thought into bubbles where
the person would is part of how they write, so "好<s>开冲" earns more against "好<s>开冲" than "好开冲"
does. It is **not** a token for distinct-n, whose n-grams stay inside one bubble: the separator is
not vocabulary, and counting it would lower distinct-1 for chatty multi-bubble replies.

All scores are on a 0–100 scale except the style stats, which are in their own units.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from wechat_avatar.categories import CATEGORIES
from wechat_avatar.dataset.clean import PROFANITY_PATTERN
from wechat_avatar.generate import BUBBLE, bubbles
from wechat_avatar.rlhf import civility as rlhf_civility

__all__ = ["BUBBLE", "bubbles"]  # re-exported: eval code reads replies through this module
# a placeholder or emoji code in brackets, or a dataset pseudonym: kept as one token
_WHOLE = re.compile(r"\[[^\[\]\s<>]{1,10}\]|<[A-Z]+_\d+>")


def words(text: str) -> list[str]:
    """jieba words of one bubble, placeholders whole, whitespace dropped."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict…" lines on stderr
    out: list[str] = []
    pos = 0
    for match in _WHOLE.finditer(text):
        out += jieba.lcut(text[pos : match.start()])
        out.append(match.group())
        pos = match.end()
    out += jieba.lcut(text[pos:])
    return [w for w in out if w.strip()]


def tokenize(reply: str) -> list[str]:
    """The reply's words with `<s>` as a token between bubbles (for BLEU and ROUGE)."""
    out: list[str] = []
    for i, bubble in enumerate(bubbles(reply)):
        if i:
            out.append(BUBBLE)
        out += words(bubble)
    return out


class _JiebaTokenizer:
    """What rouge-score calls instead of its English-only tokenizer."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return tokenize(text)


def bleu4(generated: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (0–100) on `tokenize` tokens, one reference per reply.

    sacrebleu with `tokenize="none"` on the space-joined tokens, smoothing "exp" (sacrebleu's default,
    NIST / Chen & Cherry method 3: an n-gram order with no match counts as 1/(2^k · total) instead of
    zeroing the score) and no effective order, so it is BLEU-4 proper: a corpus without a single reply
    of 4+ tokens scores 0. Chat replies are short, so absolute values are low; compare runs, not numbers.
    """
    import sacrebleu

    _same_length(generated, references)
    if not generated:
        return 0.0
    hyps = [" ".join(tokenize(g)) for g in generated]
    refs = [" ".join(tokenize(r)) for r in references]
    return float(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", smooth_method="exp").score)


def rouge(generated: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean per-reply ROUGE-1/2/L F1 (0–100) on `tokenize` tokens (rouge-score, no stemming)."""
    from rouge_score import rouge_scorer

    _same_length(generated, references)
    kinds = ("rouge1", "rouge2", "rougeL")
    if not generated:
        return dict.fromkeys(kinds, 0.0)
    scorer = rouge_scorer.RougeScorer(list(kinds), tokenizer=_JiebaTokenizer())
    totals = dict.fromkeys(kinds, 0.0)
    for gen, ref in zip(generated, references, strict=True):
        scores = scorer.score(ref, gen)  # (target, prediction)
        for kind in kinds:
            totals[kind] += scores[kind].fmeasure
    return {kind: 100 * total / len(generated) for kind, total in totals.items()}


def distinct(generated: Sequence[str], n: int) -> float:
    """distinct-n (0–100): unique n-grams / all n-grams over every generated reply, n-grams within a bubble."""
    grams: Counter[tuple[str, ...]] = Counter()
    for reply in generated:
        for bubble in bubbles(reply):
            toks = words(bubble)
            grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    total = grams.total()
    return 100 * len(grams) / total if total else 0.0


# --- style ------------------------------------------------------------------------------------------------------


class Marks(NamedTuple):
    """Which bracket codes are stickers or emoji: every `[…]` except the other message types' placeholders."""

    sticker: str  # the sticker placeholder, "[表情包]" by default
    not_emoji: frozenset[str]  # placeholders of images, links, voice … which are not stickers or emoji


def marks(overrides: Mapping[str, str] | None = None) -> Marks:
    """The marks for the render config's placeholders (`render.placeholders` in avatar.yaml)."""
    placeholders = {name: c.placeholder for name, c in CATEGORIES.items()} | dict(overrides or {})
    others = frozenset(p for name, p in placeholders.items() if p.startswith("[") and name != "sticker")
    return Marks(placeholders["sticker"], others)


DEFAULT_MARKS = marks()


def has_sticker_or_emoji(reply: str, m: Marks = DEFAULT_MARKS) -> bool:
    return any(code == m.sticker or code not in m.not_emoji for code in re.findall(r"\[[^\[\]\s<>]{1,10}\]", reply))


def reply_chars(reply: str) -> int:
    """Characters of a reply, `<s>` not counted (as in the dataset report)."""
    return sum(len(b) for b in bubbles(reply))


def style(replies: Sequence[str], m: Marks = DEFAULT_MARKS) -> dict[str, Any]:
    """How replies look: means per reply and bubble, the sticker/emoji share and the length histogram.

    bubbles_per_reply   mean count of non-empty `<s>` bubbles (an empty reply has 0)
    chars_per_bubble    mean characters per bubble, over all bubbles
    chars_per_reply     mean characters per reply, `<s>` not counted
    sticker_emoji_rate  share (0–1) of replies with a sticker placeholder or an emoji code like [捂脸]
    lengths             {chars per reply: replies}, for the length histogram
    bubble_counts       {bubbles per reply: replies}
    """
    counts = [len(bubbles(r)) for r in replies]
    lengths = [reply_chars(r) for r in replies]
    n, n_bubbles = len(replies), sum(counts)
    return {
        "replies": n,
        "bubbles_per_reply": n_bubbles / n if n else 0.0,
        "chars_per_bubble": sum(lengths) / n_bubbles if n_bubbles else 0.0,
        "chars_per_reply": statistics.fmean(lengths) if n else 0.0,
        "sticker_emoji_rate": sum(has_sticker_or_emoji(r, m) for r in replies) / n if n else 0.0,
        "lengths": dict(sorted(Counter(lengths).items())),
        "bubble_counts": dict(sorted(Counter(counts).items())),
    }


STYLE_STATS = ("bubbles_per_reply", "chars_per_bubble", "chars_per_reply", "sticker_emoji_rate")


def style_gap(generated: Mapping[str, Any], real: Mapping[str, Any]) -> dict[str, float | None]:
    """Relative difference (generated − real) / real of each style stat, and `mean_abs`: the mean of their
    absolute values, as one "how far from the person's style" number (0 = same; 0.5 = 50 % off on average).
    A stat whose real value is 0 has no relative difference (None) and is left out of the mean."""
    gaps: dict[str, float | None] = {
        stat: (generated[stat] - real[stat]) / real[stat] if real[stat] else None for stat in STYLE_STATS
    }
    known = [abs(g) for g in gaps.values() if g is not None]
    gaps["mean_abs"] = statistics.fmean(known) if known else None
    return gaps


# --- civility ---------------------------------------------------------------------------------------------------


def is_rude(reply: str) -> bool:
    """Whether any bubble matches the dataset's profanity lexicon (`dataset/clean.py` PROFANITY_PATTERN:
    common Chinese insults and rude abbreviations such as 傻逼, sb, 滚 standing alone, 闭嘴). Checked per
    bubble, as the dataset tags single messages."""
    return any(PROFANITY_PATTERN.search(b) for b in bubbles(reply))


def civility(replies: Sequence[str]) -> dict[str, Any]:
    """The share (0–1) of rude replies by two independent measures, and their counts: `is_rude` (the
    dataset's profanity list) and `hostile` (rlhf/civility.py, the offline judge's own measure of kinds
    of hostility). Both are reported because a policy trained against one measure may learn to dodge it;
    where they part, look at the replies."""
    rude, hostile = sum(is_rude(r) for r in replies), sum(rlhf_civility.hostile(r) for r in replies)
    n = len(replies)
    return {"rude": rude, "replies": n, "rude_share": rude / n if n else 0.0,
            "hostile": hostile, "hostile_share": hostile / n if n else 0.0}  # fmt: skip


# --- one run ----------------------------------------------------------------------------------------------------


def text_metrics(generated: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU-4, ROUGE-1/2/L and distinct-1/2 of generated replies against the real ones (all 0–100)."""
    return {
        "bleu4": bleu4(generated, references),
        **rouge(generated, references),
        "distinct1": distinct(generated, 1),
        "distinct2": distinct(generated, 2),
    }


def _same_length(generated: Sequence[str], references: Sequence[str]) -> None:
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated replies for {len(references)} references")


# --- collapse ---------------------------------------------------------------------------------------------------

MIN_REPEATS = 3  # a reply generated fewer times than this is not "over-produced", whatever its real share


def _normal(reply: str) -> str:
    return BUBBLE.join(bubbles(reply))  # "好的捏 " and "好的捏" are one reply


def overproduction(generated: Sequence[str], real: Sequence[str], top: int = 5) -> dict[str, Any]:
    """The replies a model writes more often than the person does: for each distinct generated reply, its
    share among `generated` divided by its share among the person's `real` replies (held-out).

    Only replies generated at least MIN_REPEATS times are ranked: with ~100 generations, a reply the
    person wrote once in 200 that the model writes twice is sampling noise, not a collapse. A reply the
    person never wrote counts as written once (a floor, so its ratio is finite and still large).
    worst: the reply with the highest ratio, with its counts; top: the `top` most generated replies.
    A well-matched model stays at or under ~1.5 (issue 13's target); a model that answers everything
    with one filler scores its share over the person's, e.g. 0.37 / 0.09 = 4.1.
    """
    gen, ref = Counter(map(_normal, generated)), Counter(map(_normal, real))
    n_gen, n_ref = len(generated), len(real)

    def entry(reply: str) -> dict[str, Any]:
        share, real_share = gen[reply] / n_gen, max(ref[reply], 1) / n_ref
        return {"reply": reply, "generated": gen[reply], "real": ref[reply], "generated_share": share,
                "real_share": ref[reply] / n_ref, "ratio": share / real_share}  # fmt: skip

    if not n_gen or not n_ref:
        return {"worst": None, "top": [], "min_repeats": MIN_REPEATS}
    ranked = [entry(reply) for reply, count in gen.items() if count >= MIN_REPEATS]
    worst = max(ranked, key=lambda e: (e["ratio"], e["generated"]), default=None)
    return {"worst": worst, "top": [entry(reply) for reply, _ in gen.most_common(top)], "min_repeats": MIN_REPEATS}
