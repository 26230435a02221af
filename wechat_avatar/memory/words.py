"""Chinese text -> the words the full-text index holds and a query asks for.

FTS5's own tokenizers cannot cut Chinese into words (unicode61 makes a whole run of Han characters
one token), so both sides are cut with jieba first and joined with spaces: `绍兴老家` is indexed
as `绍兴 老家`, and a question about `老家` finds it.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

_MARK = re.compile(r"\[[^\[\]]{1,8}\]|<[A-Z]+_\d+>")  # [捂脸], [手机图片], <PHONE_1>: no topic in them
_WORD = re.compile(r"[\w\u4e00-\u9fff]+")
# Words too common to say what a message is about; a query made only of them asks for nothing.
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "啊",
        "吧",
        "呀",
        "哦",
        "嗯",
        "你",
        "我",
        "他",
        "她",
        "它",
        "是",
        "在",
        "就",
        "都",
        "也",
        "还",
        "和",
        "有",
        "没",
        "不",
        "这",
        "那",
        "个",
        "么",
        "啥",
        "什么",
        "怎么",
        "来着",
        "一下",
        "一个",
        "你们",
        "我们",
        "他们",
        "s",
        "现在",
        "平时",
        "一般",
        "最近",
        "具体",
        "哪",
        "哪个",
        "哪儿",
        "叫",
        "名字",
        "是啥",
        "干",
        "干嘛",
        "做",
        "想",
        "点",
        "都",
        "打算",
        "全名",
    ]
)


@cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict…" lines on stderr
    return jieba


def words(text: str) -> list[str]:
    """Search-mode jieba words (long words and their parts), lower-cased, punctuation dropped."""
    return [w.lower() for w in _jieba().cut_for_search(text) if _WORD.fullmatch(w)]


def indexed(text: str) -> str:
    return " ".join(words(text))


def terms(text: str, limit: int = 12) -> list[str]:
    """The text's telling words (stopwords, stickers and placeholders such as [手机图片] dropped), each once,
    at most `limit`."""
    return list(dict.fromkeys(w for w in words(_MARK.sub(" ", text)) if w not in STOPWORDS))[:limit]


def or_query(picked: list[str]) -> str:
    """An FTS5 OR-query of the words, or "" for none."""
    return " OR ".join(f'"{w}"' for w in picked)


def query(text: str, limit: int = 12) -> str:
    """An FTS5 OR-query of the text's telling words, or "" when it has none."""
    return or_query(terms(text, limit))
