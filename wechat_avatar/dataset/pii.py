"""Consistent pseudonyms for personal data in chat text: the same phone is `<PHONE_1>` everywhere.

Pseudonymise rather than drop, so the model still learns that people send numbers and
addresses, without learning whose. The mapping back to real values is kept only in the
workspace's private folder, never in the dataset.

Hand-written rather than a library: the PII libraries we could use (presidio, scrubadub)
are English-centric, need models we cannot download here, and know nothing of mainland ID
check digits, UnionPay cards, WeChat ids or Chinese street addresses.

One regex of named alternatives scans each text; at each position the alternatives are tried
in order, so what a cue word announces (`QQ 12345678`, `订单号 13812345678`) is decided where
the cue starts, before the bare number after it is looked at. Kinds and their pseudonyms:
EMAIL, URL (only URLs that are secrets themselves; PII inside other URLs is replaced in
place), IDCARD (18 digits with the check digit, or the old 15), CARD (Luhn), PHONE (mobiles
and landlines with an area code), QQ, WXID (`wxid_…`, room ids and announced custom aliases)
and ADDRESS (streets with a number, residential compounds with a building).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from wechat_avatar.config import PiiCues

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

# Full-width digits, Latin letters and ＠, as a Chinese IME types them (`１３８…`, `ＱＱ`), are
# matched as their ASCII twins. One character for one, so spans in the folded text are spans
# in the original, and the pseudonym is keyed on the ASCII spelling.
_FOLD = str.maketrans({c: chr(ord(c) - 0xFEE0) for c in map(chr, range(0xFF10, 0xFF5B)) if c.isalnum() or c == "＠"})

# A URL is a secret as a whole when it carries a credential: a sensitive key in its query or
# fragment (`#access_token=`), or a share link whose path segment is the capability itself
# (mp.weixin.qq.com/s/… article links look the same and go too: a lost link, never a leak).
_SECRET_KEY = re.compile(
    r"[?&#;](?:[\w.-]*(?:token|key|sign|ticket|sid|session|auth|code|pass|pwd|secret|uin|openid)[\w.-]*)=", re.I
)
_SHARE_PATH = re.compile(r"/(?:s|share|invite|join)/(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{8,}", re.A)

_HAN = r"\u4e00-\u9fff"
# Characters that never belong to a place name but often stand right before one (寄到, 我住在,
# 地址): a name may not contain them, so an address does not swallow the words leading up to it.
_NOT_PLACE = "的是在住到去了往从寄送至址他她我你它咱您们"
_PLACE = rf"(?:(?![{_NOT_PLACE}])[{_HAN}])"
_REGION = rf"(?!家)(?:{_PLACE}{{2,3}}(?:省|市))?(?:{_PLACE}{{2,4}}(?:区|县))?"  # 他家虹梅路: 家 starts no name
# The building part after a street number or a compound: 3栋2单元501, 5号楼1202室, a bare room 502.
_UNITS = r"(?:\d{1,5}(?:号楼|号院|号|弄|栋|幢|座|单元|室|层|楼|户))*(?:\d{3,4}(?![\d年月日时点分秒元块万]))?"

# Between a cue word and its value: 号 / 号码 / 账号, then 是, 为, a colon or = and spaces.
_GLUE = r"(?:号码|账号|号)?\s*(?:是|为|:|：|=)?\s*"

# Tried only where a run of address characters starts (the lookbehind: same matches, much faster);
# %40 is the @ of an address inside a URL.
_LOCAL = r"[A-Za-z0-9._%+-]"
_EMAIL = rf"(?P<EMAIL>(?<!{_LOCAL}){_LOCAL}+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}})"
_URL = rf"(?P<URL>https?://[^\s<>\"'{_HAN}，。！？]+)"
_IDCARD = r"(?P<IDCARD>(?<!\d)[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d))"
# 16-19 digits, in groups of four or not; a 19-digit card is often written 4-4-4-4-3. The tail is
# its own group so a 16-digit card followed by a short unrelated number can still be tried alone.
_CARD = r"(?P<CARD>(?<!\d)\d{4}(?:[ -]?\d{4}){3}(?P<card_tail>[ -]?\d{1,3})?(?!\d))"
_ID15 = r"(?P<ID15>(?<!\d)[1-8]\d{7}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?!\d))"  # pre-1999 IDs, no check
# Mobiles, also dotted (138.1234.5678); not a decimal's tail (0.13812345678) nor a count (…次, …万).
_PHONE = r"(?P<PHONE>(?<![\d.])(?:\+?86[ -]?)?1[3-9]\d(?:[ .-]?\d{4}){2}(?!\d)(?!\s?[次万亿元块]))"
# Landlines with their area code: 010-12345678, 0755 8888 1234, (021)6234 5678.
_LANDLINE = r"(?P<LANDLINE>(?<![\d.])(?:[(（]0\d{2,3}[)）]\s?|0\d{2,3}[ -])[1-9]\d{2,3}[ -]?\d{4}(?!\d))"
_WXID = r"(?P<WXID>wxid_[A-Za-z0-9_-]{4,}|\d{5,}@chatroom)"
_ADDRESS = rf"(?P<ADDRESS>{_REGION}{_PLACE}{{1,6}}(?:路|街|大道|巷)\d{{1,5}}(?:弄|号){_UNITS})"
# A residential compound needs a building after it (阳光小区3栋…, 花园5号楼…), so 长城 or 校园 alone stay.
_ESTATE = (
    rf"(?P<ESTATE>{_REGION}{_PLACE}{{1,8}}(?:小区|花园|家园|公寓|新村|大厦|苑|府|城|村|园)"
    rf"\d{{1,4}}(?:号楼|栋|幢|座|单元|期|区|号(?=\d)){_UNITS})"
)


def _cue(word: str) -> str:
    """A cue word as a regex; a Latin one must stand apart from other letters (`wx` in `wxid_…` is none)."""
    before = r"(?<![A-Za-z0-9_])" if word[0].isascii() and word[0].isalnum() else ""
    after = r"(?![A-Za-z])" if word[-1].isascii() and word[-1].isalpha() else ""
    return before + re.escape(word) + after


def _cues(words: tuple[str, ...]) -> str:
    """Any of the words, longest first (订单号 before 订单); an empty list matches nowhere."""
    return "(?i:" + "|".join(_cue(w) for w in sorted(words, key=len, reverse=True)) + ")" if words else "(?!)"


def _gate(first: str, alternatives: list[str]) -> str:
    """Alternatives tried only where the text starts with one of `first`: re does not skip them itself."""
    return f"(?=[{first}])(?:{'|'.join(alternatives)})" if first else "(?!)"


def _cued(qq: tuple[str, ...], wechat: tuple[str, ...], not_pii: tuple[str, ...]) -> str:
    """The alternatives that start at a cue word; only the value after it is replaced."""
    keep = rf"(?P<KEEP>{_cues(not_pii)}{_GLUE}[A-Za-z]{{0,4}}\d+(?:-\d+)*)"
    qq_number = rf"(?P<QQ>{_cues(qq)}{_GLUE}(?P<qq_value>[1-9]\d{{4,10}})(?![\d@]))"
    alias = (
        rf"(?P<ALIAS>{_cues(wechat)}(?P<alias_glue>{_GLUE})"
        r"(?P<alias_value>[A-Za-z][A-Za-z0-9_-]{5,19})(?![A-Za-z0-9_-]))"
    )
    firsts = {c for word in (*qq, *wechat, *not_pii) for c in (word[0].lower(), word[0].upper())}
    return _gate(re.escape("".join(sorted(firsts))), [keep, qq_number, alias])


@lru_cache(maxsize=8)
def _patterns(
    qq: tuple[str, ...], wechat: tuple[str, ...], not_pii: tuple[str, ...]
) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(everything, what to look for inside a URL that is not itself a secret)."""
    cued = _cued(qq, wechat, not_pii)
    numbers = _gate(r"\d(（+", [_IDCARD, _CARD, _ID15, _PHONE, _LANDLINE])
    inside = [_EMAIL, cued, numbers, _WXID]
    places = _gate(_HAN, [_ADDRESS, _ESTATE])
    return re.compile("|".join([_EMAIL, _URL, cued, numbers, _WXID, places])), re.compile("|".join(inside))


# The group holding the part a pseudonym replaces, where that is not the whole match.
_VALUE = {"QQ": "qq_value", "ALIAS": "alias_value"}
# Match names that share a kind of pseudonym.
_KIND = {"ID15": "IDCARD", "LANDLINE": "PHONE", "ALIAS": "WXID", "ESTATE": "ADDRESS"}


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


def _classify(name: str, value: str, match: re.Match[str]) -> tuple[str, str] | None:
    """(kind, the value to key the pseudonym on), or None where the match is not really PII.

    `value` is the folded (ASCII) spelling of the matched part.
    """
    if name == "IDCARD":  # 18 digits: an ID if its check digit fits, else maybe a card
        if id_checksum_ok(value):
            return name, value.upper()
        name = "CARD"
    if name == "CARD":
        digits = _digits(value)
        return (name, digits) if luhn_ok(digits) else None
    if name == "PHONE":
        return name, _digits(value)[-11:]
    if name == "LANDLINE":
        return "PHONE", _digits(value)
    if name == "URL":
        return (name, value) if _SECRET_KEY.search(value) or _SHARE_PATH.search(value) else None
    if name == "EMAIL":
        return name, value.lower().replace("%40", "@")
    if name == "ALIAS" and value.isalpha() and not match.group("alias_glue").strip():
        return None  # `微信 update了`: a bare English word, not announced as an id
    if name == "KEEP":
        return None
    return _KIND.get(name, name), value


class Pseudonymiser:
    """Replaces PII with numbered placeholders, the same value always with the same one."""

    def __init__(self, cues: PiiCues | None = None) -> None:
        cues = cues or PiiCues()
        self._text, self._in_url = _patterns(tuple(cues.qq), tuple(cues.wechat), tuple(cues.not_pii))
        self._names: dict[tuple[str, str], str] = {}  # (kind, normalised value) -> placeholder
        self.originals: dict[str, str] = {}  # placeholder -> first original spelling (private)
        self.replaced: Counter[str] = Counter()
        self.distinct: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        return self._scan(text, self._text) if text else text

    def preload(self, originals: dict[str, str]) -> None:
        """Take over an earlier run's pseudonyms (its `originals`), so a value gets the placeholder it got
        there and new values are numbered after them: how `memory build` names PII as the dataset did."""
        for name, original in originals.items():
            kind, _, number = name.strip("<>").rpartition("_")
            if not number.isdigit():
                continue
            folded = original.translate(_FOLD)
            match = self._text.fullmatch(folded)
            found = _classify(match.lastgroup or "", folded, match) if match else None
            # a cued value (QQ, an alias) reads as PII only after its cue word: keyed on itself, as _replace does
            key = found if found is not None and found[0] == kind else (kind, folded)
            self._names.setdefault(key, name)
            self.originals.setdefault(name, original)
            self.distinct[kind] = max(self.distinct[kind], int(number))

    def _scan(self, text: str, pattern: re.Pattern[str]) -> str:
        """Match on the folded text, cut the original: the two have the same spans."""
        out, last = [], 0
        for match in pattern.finditer(text.translate(_FOLD)):
            out += [text[last : match.start()], self._replace(match, text)]
            last = match.end()
        return "".join([*out, text[last:]])

    def _replace(self, match: re.Match[str], text: str) -> str:
        name = match.lastgroup or ""
        start, end = match.span(_VALUE.get(name, name))
        found = _classify(name, match.string[start:end], match)
        if found is None and name == "CARD" and match.group("card_tail"):
            end = match.start("card_tail")  # a 16-digit card, then a short number of its own
            found = _classify(name, match.string[start:end], match)
        if found is None:
            whole = text[match.start() : match.end()]
            return self._scan(whole, self._in_url) if name == "URL" else whole
        return text[match.start() : start] + self._name(found, text[start:end]) + text[end : match.end()]

    def _name(self, found: tuple[str, str], original: str) -> str:
        kind = found[0]
        name = self._names.get(found)
        if name is None:
            self.distinct[kind] += 1
            name = self._names[found] = f"<{kind}_{self.distinct[kind]}>"
            self.originals[name] = original
        self.replaced[kind] += 1
        return name
