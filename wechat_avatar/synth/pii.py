"""Fake but *valid-looking* personal data to plant in the synthetic history.

Privacy filters are tested against these, so each generator produces strings a real
detector would accept: mainland mobile numbers, 18-digit resident ID numbers with the
GB 11643 check digit, bank card numbers with a Luhn digit, e-mails and a street address;
and the forms people type them in (full-width or dotted phones, landlines, a card in groups
of four, old 15-digit IDs, QQ numbers, WeChat aliases, compounds, tokens for URLs).
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
_ESTATES = ("阳光小区", "万科城市花园", "翠苑", "碧桂园", "幸福家园", "金地公寓", "梅陇新村")
_AREA_CODES = ("010", "021", "020", "0755", "0571", "028")
_HANDLES = ("xiaoyu", "ajie", "lucy", "momo", "chen", "kevin")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


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


def mobile(rng: random.Random) -> str:
    """A mobile number's 11 digits run together, as a URL or a form holds it."""
    return phone(rng).replace(" ", "").replace("-", "")


def phone_fullwidth(rng: random.Random) -> str:
    """A mobile as a Chinese IME in full-width mode types it: １３８１２３４５６７８."""
    return mobile(rng).translate(_FULL_WIDTH)


def phone_dotted(rng: random.Random) -> str:
    number = mobile(rng)
    return f"{number[:3]}.{number[3:7]}.{number[7:]}"


def landline(rng: random.Random) -> str:
    """A landline with its area code, as 010-62345678, 0755 8888 1234 or (021)6234 5678."""
    area, local = rng.choice(_AREA_CODES), str(rng.randint(2, 8)) + _digits(rng, 7)
    return rng.choice((f"{area}-{local}", f"{area} {local[:4]} {local[4:]}", f"({area}){local[:4]} {local[4:]}"))


def bank_card_grouped(rng: random.Random) -> str:
    """A 19-digit card as people write it: four groups of four and a trailing three."""
    payload = rng.choice(_CARD_BINS) + _digits(rng, 12)
    number = payload + luhn_digit(payload)
    return " ".join(number[i : i + 4] for i in range(0, 19, 4))


def id_number_15(rng: random.Random) -> str:
    """The pre-1999 15-digit ID: region, birth date yymmdd, sequence; no check digit."""
    birth = f"{rng.randint(50, 98)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    return rng.choice(_REGIONS) + birth + _digits(rng, 3)


def qq_number(rng: random.Random) -> str:
    return str(rng.randint(100_000_000, 3_999_999_999))


def wechat_alias(rng: random.Random) -> str:
    """A custom WeChat id: starts with a letter, then letters, digits, _ or -."""
    return f"{rng.choice(_HANDLES)}{rng.choice('_-')}{rng.randint(10, 9999)}"


def wxid(rng: random.Random) -> str:
    return "wxid_" + "".join(rng.choice(_ALNUM[:26] + _ALNUM[52:]) for _ in range(14))


def token(rng: random.Random, n: int = 24) -> str:
    """A random URL token with a letter and a digit, as an access token or a share link's path."""
    return rng.choice(_ALNUM[:52]) + str(rng.randint(0, 9)) + "".join(rng.choice(_ALNUM) for _ in range(n - 2))


def estate_address(rng: random.Random) -> str:
    """A home in a residential compound, with no road: …小区3栋2单元501 or …花园5号楼1202室."""
    estate, building, room = rng.choice(_ESTATES), rng.randint(1, 30), f"{rng.randint(1, 30)}0{rng.randint(1, 4)}"
    if rng.random() < 0.5:
        return f"{rng.choice(_DISTRICTS)}{estate}{building}栋{rng.randint(1, 4)}单元{room}"
    return f"{estate}{building}号楼{room}室"


def building_address(rng: random.Random) -> str:
    """A street number with the building after it: …路100号3栋502."""
    street = f"{rng.choice(_ROADS)}路{rng.randint(1, 999)}号"
    return f"{street}{rng.randint(1, 30)}栋{rng.randint(1, 30)}0{rng.randint(1, 4)}"


# slot name in a phrase template -> generator; the filled value is recorded as planted PII
PII_SLOTS = {
    "phone": phone,
    "idno": id_number,
    "card": bank_card,
    "address": address,
    "email": lambda rng: email(rng, rng.choice(_HANDLES)),
    "mobile": mobile,
    "phone_fullwidth": phone_fullwidth,
    "phone_dotted": phone_dotted,
    "landline": landline,
    "card_grouped": bank_card_grouped,
    "idno15": id_number_15,
    "qq": qq_number,
    "alias": wechat_alias,
    "wxid": wxid,
    "token": token,
    "share": lambda rng: token(rng, 22),
    "estate": estate_address,
    "building": building_address,
}
