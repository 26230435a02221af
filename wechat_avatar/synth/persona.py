"""The cast of the synthetic history: one self persona, friends, strangers, groups, accounts.

The cast depends only on the seed (never on the message count), so a 5 000-message and a
1 000 000-message export of the same seed share every contact and group.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from wechat_avatar.synth import pii

SELF_WXID = "wxid_avatar_self"
SELF_NICKNAME = "乌冬面"
SELF_ALIAS = "udon_mian"

# (name, pinyin syllables): rcontact stores quanPin and pyInitial, so we need both.
_NICKNAMES = (
    ("胡三行", "hu san xing"),
    ("陈潇", "chen xiao"),
    ("阿杰", "a jie"),
    ("小鱼干", "xiao yu gan"),
    ("Kevin", "kevin"),
    ("大橘", "da ju"),
    ("王小明", "wang xiao ming"),
    ("李雷", "li lei"),
    ("韩梅梅", "han mei mei"),
    ("张伟", "zhang wei"),
    ("刘洋", "liu yang"),
    ("赵磊", "zhao lei"),
    ("豆豆", "dou dou"),
    ("momo", "momo"),
    ("星期八", "xing qi ba"),
    ("不吃香菜", "bu chi xiang cai"),
    ("咸鱼翻身", "xian yu fan shen"),
    ("Lucy", "lucy"),
    ("老郑", "lao zheng"),
    ("一只猫", "yi zhi mao"),
    ("彭于晏本晏", "peng yu yan ben yan"),
    ("夏天的风", "xia tian de feng"),
    ("Tony", "tony"),
    ("小熊饼干", "xiao xiong bing gan"),
    ("江南", "jiang nan"),
    ("北方的狼", "bei fang de lang"),
    ("柠檬精", "ning meng jing"),
    ("晴天", "qing tian"),
    ("奶茶三分糖", "nai cha san fen tang"),
    ("Ace", "ace"),
    ("老王", "lao wang"),
    ("阿珍", "a zhen"),
    ("大力", "da li"),
    ("阿May", "a may"),
    ("🍊橘子汽水", "ju zi qi shui"),
    ("周师傅", "zhou shi fu"),
    ("胖虎", "pang hu"),
    ("静香", "jing xiang"),
    ("大雄", "da xiong"),
    ("小夫", "xiao fu"),
    ("路人甲", "lu ren jia"),
    ("Zz", "zz"),
    ("早睡早起", "zao shui zao qi"),
    ("山月", "shan yue"),
    ("木木", "mu mu"),
    ("阿冰", "a bing"),
)
_REMARKS = (
    ("驾校周师傅", "jia xiao zhou shi fu"),
    ("老妈", "lao ma"),
    ("老爸", "lao ba"),
    ("宝", "bao"),
    ("房东刘姐", "fang dong liu jie"),
    ("组长", "zu zhang"),
    ("室友阿杰", "shi you a jie"),
    ("快递小哥", "kuai di xiao ge"),
    ("表哥", "biao ge"),
    ("高中同桌", "gao zhong tong zhuo"),
)
_GROUPS = (  # (name, theme, pinyin)
    ("王者开黑群", "game", "wang zhe kai hei qun"),
    ("相亲相爱一家人", "family", "xiang qin xiang ai yi jia ren"),
    ("大学室友", "dorm", "da xue shi you"),
    ("项目组-二期", "work", "xiang mu zu er qi"),
    ("周末羽毛球🏸", "weekend", "zhou mo yu mao qiu"),
    ("干饭小分队", "food", "gan fan xiao fen dui"),
)
_GROUP_NICKS = ("打野王", "摸鱼中", "已婚勿扰", "二狗", "请叫我大哥", "产品经理", "老板别看", "球王")
_OFFICIALS = (  # (name, theme, pinyin)
    ("微信支付", "pay", "wei xin zhi fu"),
    ("招商银行信用卡", "bank", "zhao shang yin hang xin yong ka"),
    ("人民日报", "news", "ren min ri bao"),
    ("哔哩哔哩", "video", "bi li bi li"),
    ("丁香医生", "health", "ding xiang yi sheng"),
    ("肯德基", "food", "ken de ji"),
)
_TOPICS = ("game", "food", "work", "weekend", "chat", "money", "meme")
_LAUGHS = ("哈哈哈", "哈哈哈哈哈", "hhh", "233333", "笑死", "哈哈")
_FRIEND_EMOJI = ("[偷笑]", "[微笑]", "[强]", "[裂开]", "[吃瓜]", "[让我看看]", "[苦涩]", "[666]", "[抱拳]")


@dataclass(frozen=True)
class Person:
    wxid: str
    nickname: str
    pinyin: str  # syllables separated by spaces
    remark: str = ""
    remark_pinyin: str = ""
    alias: str = ""
    rtype: int = 3  # rcontact.type: bit 1 = friend
    is_new: bool = False  # added during the history: friend request + "你已添加了…" on first chat
    weight: float = 1.0  # how often we chat (a few close friends dominate)
    topics: tuple[float, ...] = ()  # weight per _TOPICS entry
    laugh: str = "哈哈哈"
    emoji: str = "[偷笑]"
    partner: bool = False  # the girlfriend: picks fights, so RLHF has rude replies to fix
    listed: bool = True  # has an rcontact row (some group strangers have none at all)

    @property
    def display(self) -> str:
        return self.remark or self.nickname or self.alias or self.wxid


@dataclass(frozen=True)
class Group:
    wxid: str
    name: str
    theme: str
    pinyin: str
    members: tuple[str, ...]  # wxids, self included
    nicks: dict[str, str] = field(default_factory=dict)  # wxid -> in-group nickname (some only)
    owner: str = ""
    invited_by: str = ""  # wxid that invited self ("" = self created or joined long ago)


@dataclass(frozen=True)
class Official:
    wxid: str
    nickname: str
    theme: str
    pinyin: str
    verify_flag: int


@dataclass(frozen=True)
class Cast:
    me: Person
    friends: tuple[Person, ...]
    strangers: tuple[Person, ...]  # group members who are not friends
    groups: tuple[Group, ...]
    officials: tuple[Official, ...]
    phone: str  # self's own phone / e-mail (userinfo ids 6 / 5), also said in a message
    email: str
    people: dict[str, Person] = field(default_factory=dict)  # wxid -> Person, friends + strangers

    @property
    def topics(self) -> tuple[str, ...]:
        return _TOPICS


def random_wxid(rng: random.Random) -> str:
    """`wxid_` + 14 lower-case alphanumerics, or (old accounts) a custom user name."""
    if rng.random() < 0.15:
        return rng.choice(("a", "zz", "lin", "tom")) + str(rng.randint(10**6, 10**10))
    return "wxid_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(14))


def _person(rng: random.Random, name: tuple[str, str], wxid: str, friend: bool) -> Person:
    topics = tuple(rng.uniform(0.2, 1.0) ** 2 for _ in _TOPICS)
    alias = name[1].replace(" ", "") + f"_{rng.randint(1, 999)}" if rng.random() < 0.3 else ""
    return Person(
        wxid=wxid,
        nickname=name[0],
        pinyin=name[1],
        alias=alias,
        rtype=rng.choice((3, 3, 3, 2051, 8388611)) if friend else rng.choice((0, 4)),
        weight=rng.paretovariate(1.3) if friend else 0.3,
        topics=topics,
        laugh=rng.choice(_LAUGHS),
        emoji=rng.choice(_FRIEND_EMOJI),
        is_new=friend and rng.random() < 0.25,
        listed=friend or rng.random() < 0.5,
    )


def _with_remark(person: Person, remark: tuple[str, str]) -> Person:
    person = replace(person, remark=remark[0], remark_pinyin=remark[1])
    if remark[0] == "宝":
        person = replace(person, partner=True, weight=max(person.weight, 8.0), is_new=False)
    return person


def _people(rng: random.Random) -> tuple[list[Person], list[Person]]:
    names = list(_NICKNAMES)
    rng.shuffle(names)
    n_friends = rng.randint(22, 34)
    friends = [_person(rng, name, random_wxid(rng), True) for name in names[:n_friends]]
    for i, remark in enumerate(rng.sample(_REMARKS, 7)):
        friends[i] = _with_remark(friends[i], remark)
    strangers = [_person(rng, name, random_wxid(rng), False) for name in names[n_friends : n_friends + 10]]
    return friends, strangers


def _group(rng: random.Random, spec: tuple[str, str, str], friends: list[Person], strangers: list[Person]) -> Group:
    size = rng.randint(4, 12)
    n_strangers = rng.randint(1, min(3, size - 2))
    picked = rng.sample(friends, size - 1 - n_strangers) + rng.sample(strangers, n_strangers)
    members = (SELF_WXID, *(p.wxid for p in picked))
    # Some members renamed themselves in this group: roomdata carries it, displayname does not.
    nicks = {w: rng.choice(_GROUP_NICKS) for w in members[1:] if rng.random() < 0.35}
    if rng.random() < 0.5:
        nicks[SELF_WXID] = rng.choice(("乌冬", "面面", "udon"))
    owner = rng.choice(members)
    return Group(
        wxid=f"{rng.randint(10**10, 6 * 10**10)}@chatroom",
        name=spec[0],
        theme=spec[1],
        pinyin=spec[2],
        members=members,
        nicks=nicks,
        owner=owner,
        invited_by=owner if owner != SELF_WXID and rng.random() < 0.5 else "",
    )


def _official(rng: random.Random, spec: tuple[str, str, str]) -> Official:
    return Official(f"gh_{rng.getrandbits(48):012x}", spec[0], spec[1], spec[2], rng.choice((8, 24, 56)))


def make_cast(rng: random.Random) -> Cast:
    friends, strangers = _people(rng)
    groups = tuple(_group(rng, spec, friends, strangers) for spec in rng.sample(_GROUPS, rng.randint(3, 6)))
    officials = tuple(_official(rng, spec) for spec in rng.sample(_OFFICIALS, 4))
    me = Person(SELF_WXID, SELF_NICKNAME, "wu dong mian", alias=SELF_ALIAS)
    people = {p.wxid: p for p in (*friends, *strangers)}
    return Cast(
        me,
        tuple(friends),
        tuple(strangers),
        groups,
        officials,
        phone=pii.phone(rng).replace(" ", "").replace("-", ""),
        email=pii.email(rng, "udon"),
        people=people,
    )
