"""Sample-level cleaning rules: profanity tags, blocked words, filler and placeholder replies."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Rude phrases seen in casual Chinese chat. Tagging, not filtering: the RLHF stage uses the
# tag to find replies to make more civil. Single characters only count standing alone
# ("滚" is rude, "滚动" is not).
PROFANITY = (
    r"傻[逼比bB]|煞笔|(?<![a-z])(?:sb|cnm|nmsl|tmd)(?![a-z])|妈的|他妈|你妈|尼玛|草泥马|去死|滚蛋|滚开|"
    r"脑残|白痴|智障|废物|蠢货|神经病|你有病|有病吧|关你屁事|闭嘴|懒得理你|烦不烦|爱咋咋地|死开|"
    r"(?:^|[^\u4e00-\u9fff])[滚爬](?:$|[^\u4e00-\u9fff])"
)
PROFANITY_PATTERN = re.compile(PROFANITY, re.I)
# A bubble that is only a placeholder such as [手机图片] or [外部链接]title is not "what was said".
SPOKEN_CATEGORIES = frozenset({"text", "quote", "app_text", "solitaire"})


def placeholder_only(categories: Iterable[str]) -> bool:
    return not any(c in SPOKEN_CATEGORIES for c in categories)


class BlockedWords:
    """Configurable words to mask (`*` per character) or to drop whole samples for."""

    def __init__(self, words: Iterable[str]) -> None:
        words = sorted({w for w in words if w}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, words))) if words else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def found(self, text: str) -> bool:
        return bool(self._pattern and self._pattern.search(text))

    def mask(self, text: str) -> str:
        return self._pattern.sub(lambda m: "*" * len(m.group()), text) if self._pattern else text
