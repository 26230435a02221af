"""The self persona's life: a fixed set of personal facts, how they come up, and the probes.

Every fact is said by the persona itself, in answer to a friend, many times over the history and
to different friends, always with the same value (`mention`s). After the last message come the
probes: a friend asks about one fact in words the history never used. They are written only to
the export's side file (`synth.json`: "facts", "probes"), never into the history, so no split of
the dataset has seen them: eval asks them as new conversations and checks the reply for the
fact's `match` words; memory may retrieve everything said before.

    {"key": "pet", "label": "猫的名字", "value": "年糕", "match": ["年糕"]}
    {"fact": "pet", "friend": "胡三行", "friend_wxid": "wxid_…", "ts_ms": 1719…, "question": "你养的那只猫叫啥名"}
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from wechat_avatar.synth.persona import Cast, Person
from wechat_avatar.synth.phrases import Exchange

PROBE_GAP_MS = 6 * 3_600_000  # the first probe comes well after the last message: a session of its own
PROBE_STEP_MS = 2 * 3_600_000  # and each probe is its own session too


@dataclass(frozen=True)
class Fact:
    key: str
    label: str  # what the fact is, for reports
    value: str
    match: tuple[str, ...]  # a reply states the fact when it contains one of these
    mentions: tuple[Exchange, ...]  # (a friend's line, the persona's answers that state the value)
    # a friend asks about it in new words (never said in the history), sharing a word or two with some
    # mention as people do: "你老家是哪儿的呀" after "过年回家吗 / 回绍兴老家待一周"
    probes: tuple[str, ...]
    not_to_partner: bool = False  # "my girlfriend 小雨" is not said to 小雨 herself


def _x(said: str, *answers: str) -> Exchange:
    return Exchange(said, answers)


FACTS: tuple[Fact, ...] = (
    Fact("hometown", "老家", "绍兴", ("绍兴",),
         (_x("过年回家吗", "回<s>回绍兴老家待一周", "回的<s>绍兴老家[呲牙]"),
          _x("你是哪里人来着", "绍兴的<s>黄酒那个绍兴", "浙江绍兴<s>老家"),
          _x("给你带了点特产", "谢啦<s>下次我给你带绍兴老家的黄酒")),
         ("你老家是哪儿的呀", "春节回老家是回哪", "你是浙江哪里人")),
    Fact("job", "工作", "产品经理", ("产品经理", "产品"),
         (_x("你现在做什么工作", "产品经理<s>天天写需求[捂脸]", "做产品经理<s>就是画原型的"),
          _x("又在加班？", "产品经理哪有不加班的<s>[苦涩]"),
          _x("你们程序员是不是天天写代码", "我不是程序员<s>我是产品经理[捂脸]")),
         ("你是干什么工作的", "你的工作具体做啥", "你天天加班是做什么的")),
    Fact("company", "公司", "星河科技", ("星河科技", "星河"),
         (_x("你在哪家公司上班", "星河科技<s>做产品的", "星河科技<s>在园区那边"),
          _x("你们公司年会怎么样", "星河科技的年会<s>抽了个充电宝[捂脸]"),
          _x("你们公司招人吗", "星河科技最近在招<s>简历发我")),
         ("你现在在哪个公司", "你上班那家公司叫什么", "你们公司全名是啥")),
    Fact("pet", "猫的名字", "年糕", ("年糕",),
         (_x("你家猫叫什么", "年糕<s>一只橘猫", "叫年糕<s>胖得很"),
          _x("晚上出来吗", "不了<s>回家喂年糕", "得先回家喂猫<s>年糕饿了"),
          _x("猫还好吗", "年糕又胖了<s>[捂脸]", "年糕好着呢<s>又把杯子推下去了")),
         ("你养的那只猫叫啥名", "你家橘猫叫什么", "你的猫名字是什么来着")),
    Fact("partner", "女朋友", "小雨", ("小雨",),
         (_x("周末带女朋友出来吃饭啊", "好<s>我问问小雨", "行<s>小雨说她想吃烤肉"),
          _x("你女朋友叫啥", "小雨<s>下次介绍你们认识"),
          _x("七夕怎么过", "陪小雨看电影<s>票都买了")),
         ("你女朋友是叫什么名字", "七夕你打算陪谁过", "你女朋友名字是啥"), not_to_partner=True),
    Fact("food", "最爱吃的", "酸菜鱼", ("酸菜鱼",),
         (_x("你最爱吃啥", "酸菜鱼<s>一周能吃三顿", "酸菜鱼<s>没有之一"),
          _x("晚上吃什么", "酸菜鱼吧<s>老样子"),
          _x("推荐个好吃的", "楼下那家酸菜鱼<s>绝了")),
         ("你最爱吃的菜是啥", "推荐一道你最爱吃的", "晚上想吃点什么")),
    Fact("game", "玩的游戏", "云顶之弈", ("云顶",),
         (_x("最近玩什么游戏", "云顶之弈<s>天天下棋", "还是云顶<s>戒不掉"),
          _x("今晚来一把？", "来<s>云顶老规矩", "云顶的话可以<s>九点")),
         ("你现在都玩啥游戏", "你最近沉迷哪个游戏", "你下班都打什么游戏")),
    Fact("rank", "段位", "大师", ("大师",),
         (_x("云顶什么段位了", "大师了<s>[旺柴]", "刚上大师<s>累死"),
          _x("上分了没", "上大师了<s>不打了", "大师<s>稳住了")),
         ("你现在什么段位啊", "你云顶打到什么段位了", "最近上分上到哪了")),
    Fact("habit", "每周的习惯", "周六早上游泳", ("游泳",),
         (_x("周六早上出来喝早茶吗", "不行<s>周六早上要去游泳", "周六早上游泳<s>中午可以"),
          _x("你最近在锻炼吗", "每周六游泳<s>雷打不动", "在<s>周六都去游泳"),
          _x("周末一起吃早饭", "周六上午游泳<s>周日吧")),
         ("你周六早上一般干嘛", "你平时怎么锻炼身体", "周末早上有什么固定安排")),
)  # fmt: skip
BY_KEY = {fact.key: fact for fact in FACTS}


class FactPlan:
    """Which fact comes up next: every fact in turn (a fresh shuffle per round), so each is mentioned
    about as often as the others whatever the history's length."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.round: list[Fact] = []
        self.mentions: dict[str, int] = {fact.key: 0 for fact in FACTS}

    def next(self) -> Fact:
        if not self.round:
            self.round = list(FACTS)
            self.rng.shuffle(self.round)
        fact = self.round.pop()
        self.mentions[fact.key] += 1
        return fact


def probes(cast: Cast, rng: random.Random, after_ms: int) -> list[dict[str, Any]]:
    """Every probe question, each asked by a friend in a session of its own after `after_ms`."""
    out: list[dict[str, Any]] = []
    ts = after_ms + PROBE_GAP_MS
    for fact in FACTS:
        for question in fact.probes:
            friend = _asker(cast, rng, fact)
            out.append({"fact": fact.key, "friend": friend.display, "friend_wxid": friend.wxid,
                        "ts_ms": ts, "question": question})  # fmt: skip
            ts += PROBE_STEP_MS
    return out


def facts_manifest() -> list[dict[str, Any]]:
    return [{"key": f.key, "label": f.label, "value": f.value, "match": list(f.match)} for f in FACTS]


def _asker(cast: Cast, rng: random.Random, fact: Fact) -> Person:
    friends = [p for p in cast.friends if not (fact.not_to_partner and p.partner)]
    return rng.choice(friends)
