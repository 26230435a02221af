"""The pseudonymiser on lines as people type them, written by hand (not by synth).

Each row is one chat line and the exact text the dataset gets. Card and ID numbers below carry
valid Luhn / GB 11643 check digits, as a real one would; nothing here belongs to anyone.
"""

from __future__ import annotations

import pytest

from wechat_avatar.config import AvatarConfig, PiiCues, load_config
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.errors import ConfigError

FOUND = [
    # QQ numbers announced by a cue word
    ("我QQ 12345678 加一下", "我QQ <QQ_1> 加一下"),
    ("qq号：987654321", "qq号：<QQ_1>"),
    ("扣扣是55667788", "扣扣是<QQ_1>"),
    ("QQ号码 10001", "QQ号码 <QQ_1>"),
    ("ＱＱ１２３４５６７８", "ＱＱ<QQ_1>"),
    # WeChat ids: custom aliases after a cue, and wxid_… anywhere
    ("微信号 lucy_1990", "微信号 <WXID_1>"),
    ("加我vx: ajie-88", "加我vx: <WXID_1>"),
    ("wx momo_chen2 备注同学", "wx <WXID_1> 备注同学"),
    ("V信 Kevin-007", "V信 <WXID_1>"),
    ("我微信是lucychen", "我微信是<WXID_1>"),
    ("加我 xiaoyu_2001", "加我 <WXID_1>"),
    ("微信 wxid_abc12345", "微信 <WXID_1>"),
    ("https://example.com/u?wx=lucy_1990", "https://example.com/u?wx=<WXID_1>"),
    # landlines with their area code
    ("座机 010-12345678", "座机 <PHONE_1>"),
    ("店里电话 0755 8888 1234", "店里电话 <PHONE_1>"),
    ("(021)6234 5678", "<PHONE_1>"),
    ("前台（021）62345678转8", "前台<PHONE_1>转8"),
    ("0571-8888-1234", "<PHONE_1>"),
    # bank cards: 19 digits as 4-4-4-4-3, run together, 16 digits
    ("卡号 6222 0212 3456 7890 128", "卡号 <CARD_1>"),
    ("6222021234567890128", "<CARD_1>"),
    ("6228 4800 1234 5671 明天转", "<CARD_1> 明天转"),
    ("6228-4800-1234-5671", "<CARD_1>"),
    # PII inside a URL that is not itself a secret: replaced in place
    ("https://example.com/u?mobile=13812345678&from=share", "https://example.com/u?mobile=<PHONE_1>&from=share"),
    ("https://example.com/u?email=lucy@163.com", "https://example.com/u?email=<EMAIL_1>"),
    ("https://example.com/u?email=lucy%40163.com", "https://example.com/u?email=<EMAIL_1>"),
    ("看这个 https://example.com/p/wxid_abc12345/home", "看这个 https://example.com/p/<WXID_1>/home"),
    # URLs that are secrets as a whole
    ("https://example.com/cb#access_token=abcDEF123456", "<URL_1>"),
    ("https://example.com/login?token=abc", "<URL_1>"),
    ("网盘 https://pan.baidu.com/s/1AbCdEfGh2345 快存", "网盘 <URL_1> 快存"),
    ("https://example.com/share/Xy7Kp2Qm9Lz，速看", "<URL_1>，速看"),
    # mobiles: full-width, dotted, spaced, with +86
    ("１３８１２３４５６７８", "<PHONE_1>"),
    ("打我电话138.1234.5678", "打我电话<PHONE_1>"),
    ("138 1234 5678", "<PHONE_1>"),
    ("+86 138-1234-5678", "<PHONE_1>"),
    # ID cards: 18 digits with the check digit, the old 15
    ("身份证110105199003071239", "身份证<IDCARD_1>"),
    ("老身份证110105900307123还能用吗", "老身份证<IDCARD_1>还能用吗"),
    # addresses: compounds without a 路/街, the building after 号, the words before kept
    ("我住阳光小区3栋2单元501", "我住<ADDRESS_1>"),
    ("万科城市花园5号楼1202室", "<ADDRESS_1>"),
    ("地址杭州市西湖区翠苑3幢201", "地址<ADDRESS_1>"),
    ("寄到虹梅路100号3栋502", "寄到<ADDRESS_1>"),
    ("他家虹梅路100号", "他家<ADDRESS_1>"),
    ("他们家在虹梅路100号", "他们家在<ADDRESS_1>"),
    ("快递寄到上海市闵行区虹梅路12弄3号101室", "快递寄到<ADDRESS_1>"),
    ("徐家汇路88号", "<ADDRESS_1>"),
    # e-mail, as before
    ("邮箱 Lucy.Chen@outlook.com", "邮箱 <EMAIL_1>"),
    ("我的邮箱lucy_88@163.com谢谢", "我的邮箱<EMAIL_1>谢谢"),
]

KEPT = [
    # times, counts, prices, years, codes, order numbers, ordinary numbers
    "2024-05-03 09:05:00",
    "1714700000",
    "1714700000123",
    "¥13800",
    "价格13800元",
    "2024年5月3日",
    "验证码 384920",
    "验证码：384920，5分钟内有效",
    "订单号 13812345678",
    "订单13812345678已发货",
    "快递单号 SF1234567890",
    "订单号：6222021234567890128",
    "播放量13800000000次",
    "13800000000次播放",
    "阅读量 100000",
    "我有3个苹果，花了25块",
    "会议号 123 456 789",
    "房间号 1202",
    "版本 13.8.1234",
    "2024-05-03T09:05:00+08:00",
    "在3楼等你",
    "我们小区3个人阳了",
    "长城5号",
    "在万达广场3楼",
    "0.13812345678",
    "https://example.com/article/2024/05/03",
    "https://wx.qq.com/",
    # cue words with no id after them
    "微信 update了",
    "加我一下",
    "用微信扫一扫",
    "QQ音乐 3首",
    "wxid",
]


@pytest.mark.parametrize(("line", "masked"), FOUND)
def test_each_class_is_pseudonymised(line: str, masked: str) -> None:
    assert Pseudonymiser()(line) == masked


@pytest.mark.parametrize("line", KEPT)
def test_what_is_not_pii_is_kept(line: str) -> None:
    pseudo = Pseudonymiser()
    assert pseudo(line) == line
    assert not pseudo.originals


def test_the_same_value_has_one_pseudonym_however_written() -> None:
    pseudo = Pseudonymiser()
    lines = ["13812345678", "１３８１２３４５６７８", "138.1234.5678", "https://a.cn/?mobile=13812345678"]
    lines.append("13900001111")
    assert [pseudo(x) for x in lines] == ["<PHONE_1>"] * 3 + ["https://a.cn/?mobile=<PHONE_1>", "<PHONE_2>"]
    assert pseudo("QQ 12345678，邮箱12345678@qq.com，Q号12345678") == "QQ <QQ_1>，邮箱<EMAIL_1>，Q号<QQ_1>"
    assert pseudo("(021)6234 5678 / （021）62345678") == "<PHONE_3> / <PHONE_3>"
    assert pseudo.originals == {  # the first spelling seen, for the private map
        "<PHONE_1>": "13812345678",
        "<PHONE_2>": "13900001111",
        "<QQ_1>": "12345678",
        "<EMAIL_1>": "12345678@qq.com",
        "<PHONE_3>": "(021)6234 5678",
    }
    assert pseudo.replaced == {"PHONE": 7, "QQ": 2, "EMAIL": 1}
    assert pseudo.distinct == {"PHONE": 3, "QQ": 1, "EMAIL": 1}


def test_a_card_then_a_short_number_masks_the_card_alone() -> None:
    # 6228 4800 1234 5671 is a card; with "12" after it the 18 digits fail Luhn
    assert Pseudonymiser()("6228 4800 1234 5671 12点前转") == "<CARD_1> 12点前转"


def test_cue_words_come_from_the_config() -> None:
    cues = PiiCues(qq=["飞Q"], wechat=["微信"], not_pii=["工号"])
    pseudo = Pseudonymiser(cues)
    assert pseudo("飞Q 12345678") == "飞Q <QQ_1>"
    assert pseudo("QQ 12345678") == "QQ 12345678"  # no longer a cue
    assert pseudo("工号 13812345678") == "工号 13812345678"
    assert pseudo("订单号 13812345678") == "订单号 <PHONE_1>"
    none = Pseudonymiser(PiiCues(qq=[], wechat=[], not_pii=[]))  # no cue words: no cue rules, not "any number"
    assert none("QQ 12345678，订单号 13812345678，工号 20240503") == "QQ 12345678，订单号 <PHONE_1>，工号 20240503"


def test_cue_lists_are_documented_and_validated(tmp_path) -> None:
    assert AvatarConfig().dataset.pii_cues == PiiCues()
    assert all(field.description for field in PiiCues.model_fields.values())
    config = tmp_path / "avatar.yaml"
    config.write_text("dataset:\n  pii_cues:\n    qq: ['QQ', ' ']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dataset\.pii_cues\.qq: .*cue word must not be blank"):
        load_config(config)
