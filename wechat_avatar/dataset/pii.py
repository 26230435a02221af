"""Consistent pseudonyms for personal data in chat text: the same phone is `<PHONE_1>` everywhere.

Pseudonymise rather than drop, so the model still learns that people send numbers and
addresses, without learning whose. The mapping back to real values is kept only in the
workspace's private folder, never in the dataset.

Hand-written rather than a library: the PII libraries we could use (presidio, scrubadub)
are English-centric, need models we cannot download here, and know nothing of mainland ID
check digits, UnionPay cards, WeChat ids or Chinese street addresses.
"""

from __future__ import annotations

import re
from collections import Counter

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SENSITIVE_QUERY = re.compile(
    r"[?&](?:[\w.-]*(?:token|key|sign|ticket|sid|session|auth|code|pass|pwd|secret|uin|openid)[\w.-]*)=", re.I
)
_HAN = r"\u4e00-\u9fff"

# One pass over each text: alternatives are tried left to right at each position, so the
# longer digit runs (ID 18, card 16-19) come before phones (11).
PII_PATTERN = re.compile(
    rf"""
    (?P<EMAIL>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}})
  | (?P<URL>https?://[^\s<>"'{_HAN}，。！？]+)
  | (?P<IDCARD>(?<![0-9])[1-9]\d{{5}}(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{{3}}[\dXx](?![0-9]))
  | (?P<CARD>(?<![0-9])\d{{4}}(?:[ -]?\d{{4}}){{3}}\d{{0,3}}(?![0-9]))
  | (?P<PHONE>(?<![0-9])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{{4}}){{2}}(?![0-9]))
  | (?P<WXID>wxid_[A-Za-z0-9_-]{{4,}}|\d{{5,}}@chatroom)
  | (?P<ADDRESS>(?![是在住到去的了往从])(?:[{_HAN}]{{2,3}}(?:省|市))?(?:[{_HAN}]{{2,4}}(?:区|县))?
        [{_HAN}]{{1,6}}(?:路|街|大道|巷)
        \d{{1,5}}(?:弄|号)(?:\d{{1,5}}(?:号|弄|栋|幢|座|单元|室|层|楼))*)
    """,
    re.X,
)


def id_checksum_ok(number: str) -> bool:
    """GB 11643: the 18th character is a check digit over the first 17."""
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


class Pseudonymiser:
    """Replaces PII with numbered placeholders, the same value always with the same one."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}  # (kind, normalised value) -> placeholder
        self.originals: dict[str, str] = {}  # placeholder -> first original spelling (private)
        self.replaced: Counter[str] = Counter()
        self.distinct: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        return PII_PATTERN.sub(self._replace, text) if text else text

    def _replace(self, match: re.Match[str]) -> str:
        value = match.group()
        found = self._classify(match.lastgroup or "", value)
        if found is None:
            return value
        kind = found[0]
        name = self._names.get(found)
        if name is None:
            self.distinct[kind] += 1
            name = self._names[found] = f"<{kind}_{self.distinct[kind]}>"
            self.originals[name] = value
        self.replaced[kind] += 1
        return name

    @staticmethod
    def _classify(kind: str, value: str) -> tuple[str, str] | None:
        """(kind, the value to key the pseudonym on), or None where the match is not really PII."""
        if kind == "IDCARD":  # 18 digits: an ID if its check digit fits, else maybe a card
            if id_checksum_ok(value):
                return kind, value.upper()
            kind = "CARD"
        if kind == "CARD":
            digits = _digits(value)
            return (kind, digits) if luhn_ok(digits) else None
        if kind == "PHONE":
            return kind, _digits(value)[-11:]
        if kind == "URL":
            return (kind, value) if _SENSITIVE_QUERY.search(value) else None
        if kind == "EMAIL":
            return kind, value.lower()
        return kind, value
