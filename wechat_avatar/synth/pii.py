"""Fake but *valid-looking* personal data to plant in the synthetic history.

Privacy filters are tested against these, so each generator produces strings a real
detector would accept: mainland mobile numbers, 18-digit resident ID numbers with the
GB 11643 check digit, bank card numbers with a Luhn digit, e-mails and a street address.
Nothing here belongs to a real person: every digit comes from the seeded `random.Random`.
"""

from __future__ import annotations

import random

# Fixed across seeds so a privacy test can grep any output for them without the manifest.
CANARIES = ("CANARY-7Q2X-K9M4-ALPHA", "CANARY-7Q2X-P3V8-BRAVO")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_REGIONS = ("110101", "310104", "310112", "440305", "330106", "510107", "420111", "320102")
_CARD_BINS = ("622202", "622848", "621700", "622588", "621483", "625807", "436742")
_MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "foxmail.com")
_ROADS = ("虹梅", "莘庄", "漕宝", "中山北", "建国西", "文一西", "科苑南", "天府三")
_DISTRICTS = ("上海市闵行区", "上海市徐汇区", "杭州市西湖区", "深圳市南山区", "成都市高新区")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def phone(rng: random.Random) -> str:
    """11-digit mobile number 1[3-9]xxxxxxxxx, sometimes written with spaces or dashes."""
    number = "1" + rng.choice("3456789") + _digits(rng, 9)
    style = rng.random()
    if style < 0.15:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style < 0.25:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    return number


def id_check_digit(first17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def id_number(rng: random.Random) -> str:
    """18-digit resident ID: region, birth date, sequence, GB 11643 check digit."""
    birth = f"{rng.randint(1975, 2003)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = rng.choice(_REGIONS) + birth + _digits(rng, 3)
    return first17 + id_check_digit(first17)


def luhn_digit(payload: str) -> str:
    """The digit that makes payload + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)  # the check digit will sit right of payload
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def luhn_ok(number: str) -> bool:
    return luhn_digit(number[:-1]) == number[-1]


def bank_card(rng: random.Random) -> str:
    """16- or 19-digit UnionPay-style card number with a valid Luhn digit."""
    length = rng.choice((16, 19))
    payload = rng.choice(_CARD_BINS) + _digits(rng, length - 7)
    return payload + luhn_digit(payload)


def email(rng: random.Random, handle: str) -> str:
    domain = rng.choice(_MAIL_DOMAINS)
    if domain == "qq.com":
        return f"{rng.randint(10_000_000, 3_999_999_999)}@qq.com"
    return f"{handle}{rng.randint(1, 9999)}@{domain}"


def address(rng: random.Random) -> str:
    return (
        f"{rng.choice(_DISTRICTS)}{rng.choice(_ROADS)}路{rng.randint(1, 999)}弄"
        f"{rng.randint(1, 40)}号{rng.randint(1, 30)}0{rng.randint(1, 4)}室"
    )


# slot name in a phrase template -> generator; the filled value is recorded as planted PII
PII_SLOTS = {
    "phone": phone,
    "idno": id_number,
    "card": bank_card,
    "address": address,
    "email": lambda rng: email(rng, rng.choice(("xiaoyu", "ajie", "lucy", "momo", "chen", "kevin"))),
}
