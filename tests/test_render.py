"""render.py: the seed's own examples verbatim, every category in real shapes, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wechat_avatar.config import DEFAULT_DROP, RenderConfig
from wechat_avatar.render import ANY, CATEGORIES, TABLE, UNKNOWN_TEXT, Rendered, render

FIXTURES = Path(__file__).parent / "fixtures" / "render"
KEEP_ALL = RenderConfig(drop=[])  # so a test sees "ok" rather than the default "dropped"


def seed(name: str) -> str:
    return (FIXTURES / f"seed_{name}").read_text(encoding="utf-8")


def app(type_: int, inner: str = "", title: str = "") -> str:
    return (
        f'<msg><appmsg appid="" sdkver="0"><title>{title}</title><des></des><type>{type_}</type>'
        f"{inner}</appmsg><fromusername>wxid_a</fromusername><scene>0</scene></msg>"
    )


# ---- the seed's examples (wechat-avatar.md §1.2.1), copied verbatim into fixtures ---------

SEED_CASES = [
    # (fixture, base, sub, text, category)
    ("quote.xml", 49, 57, "我没问我爸", "quote"),
    ("emoji.txt", 1, 0, "[捂脸]", "text"),
    ("link.xml", 49, 4, "[外部链接]凌晨四点起床，我见到了传说中的“接天莲叶无穷碧，映日荷花别样红”", "link"),
    ("image.xml", 3, 0, "[手机图片]", "image"),
    ("sticker.txt", 47, 0, "[表情包]", "sticker"),
    ("sticker_other.txt", 47, 0, "[表情包]", "sticker"),
    ("transfer.xml", 49, 2000, "[微信转账]", "transfer"),
    ("announcement.xml", 49, 87, "[群公告]", "announcement"),
    ("red_packet_taken.txt", 10000, 0, "[对方领取红包]", "red_packet_taken"),
    ("card.xml", 42, 0, "[名片推荐]CYGGL", "card"),
]


@pytest.mark.parametrize(("fixture", "base", "sub", "text", "category"), SEED_CASES)
def test_seed_examples_render_exactly_as_the_seed(fixture: str, base: int, sub: int, text: str, category: str) -> None:
    out = render(base, sub, seed(fixture))
    assert (out.text, out.category, out.status, out.sub_type, out.note) == (text, category, "ok", sub, "")


def test_seed_quote_keeps_the_quoted_line_aside() -> None:
    assert render(49, 57, seed("quote.xml")).quote == "??: 我妈说可以"
    with_context = render(49, 57, seed("quote.xml"), RenderConfig(quote_context=True))
    assert with_context.text == "我没问我爸「??: 我妈说可以」"


def test_appmsg_sub_type_comes_from_the_xml() -> None:
    assert render(49, 0, seed("link.xml")).sub_type == 4
    assert render(49, 5, seed("transfer.xml")) == Rendered("[微信转账]", "transfer", "ok", 2000)
    assert render(3, 7, seed("image.xml")).sub_type == 7  # other bases keep the given sub type


# ---- every other category, in the shapes of reference/wechat-formats.md §4 ----------------

PAT_TEMPLATE = (
    "<patMsg><chatUser>wxid_b</chatUser><records><recordNum>1</recordNum><record>"
    "<fromUser>wxid_a</fromUser><pattedUser>wxid_b</pattedUser><templete><![CDATA["
    '"${wxid_a}${fromusername@textstatusicon}" 拍了拍 "${wxid_b}${pattedusername@textstatusicon}"的肩膀'
    "]]></templete></record></records></patMsg>"
)
INVITE = (
    '<sysmsg type="sysmsgtemplate"><sysmsgtemplate><content_template type="tmpl_type_profile">'
    '<plain><![CDATA[]]></plain><template><![CDATA["$username$"邀请"$names$"加入了群聊]]></template>'
    '<link_list><link name="username" type="link_profile"><memberlist><member>'
    "<username><![CDATA[wxid_a]]></username><nickname><![CDATA[张三]]></nickname></member></memberlist>"
    '</link><link name="names" type="link_profile"><memberlist>'
    "<member><username><![CDATA[wxid_b]]></username><nickname><![CDATA[李四]]></nickname></member>"
    "<member><username><![CDATA[wxid_c]]></username><nickname><![CDATA[王五]]></nickname></member>"
    "</memberlist><separator><![CDATA[、]]></separator></link></link_list></content_template>"
    "</sysmsgtemplate></sysmsg>"
)
VOIP = (
    '<voipmsg type="VoIPBubbleMsg"><VoIPBubbleMsg><msg><![CDATA[通话时长 00:27]]></msg>\n'
    "<room_type>1</room_type>\n<red_dot>false</red_dot>\n<roomid>529184440743097310</roomid>\n"
    "<duration>27</duration>\n</VoIPBubbleMsg></voipmsg>"
)
FRIEND_REQUEST = (
    '<msg fromusername="wxid_a" encryptusername="v3_0a@stranger" fromnickname="张三" content="我是张三" '
    'fullpy="zhangsan" shortpy="ZS" imagestatus="3" scene="30" country="CN" province="Guangdong" '
    'city="Shenzhen" sign="" percard="1" sex="1" ticket="v4_0b@stranger" opcode="2">'
    '<brandlist count="0" ver="0"></brandlist></msg>'
)
CASES = [
    # (base, sub, content, text, category)
    (1, 0, "@李四\u2005晚上吃啥[捂脸]", "@李四\u2005晚上吃啥[捂脸]", "text"),
    (
        34,
        0,
        '<msg><voicemsg endflag="1" voiceformat="4" voicelength="3140" length="4833" /></msg>',
        "[语音]",
        "voice",
    ),
    (
        43,
        0,
        '<msg><videomsg aeskey="x" length="1200000" playlength="12" md5="abc" /></msg>',
        "[视频]",
        "video",
    ),
    (62, 0, '<msg><videomsg length="9000" playlength="3" /></msg>', "[视频]", "video"),
    (
        47,
        0,
        '<msg><emoji fromusername="wxid_a" type="2" md5="15ca2d96" len="123" cdnurl="http://x" /></msg>',
        "[表情包]",
        "sticker",
    ),
    (
        49,
        8,
        app(8, "<appattach><totallen>1</totallen><emoticonmd5>15ca</emoticonmd5></appattach>"),
        "[表情包]",
        "sticker",
    ),
    (49, 2, app(2, "<appattach><totallen>2048</totallen></appattach>"), "[手机图片]", "image"),
    (
        48,
        0,
        '<?xml version="1.0"?>\n<msg>\n\t<location x="22.54" y="113.93" scale="15" '
        'label="广东省深圳市南山区深南大道10000号" maptype="roadmap" poiname="腾讯大厦" '
        'poiid="qqmap_1" />\n</msg>',
        "[位置]腾讯大厦",
        "location",
    ),
    (
        48,
        0,
        '<msg><location x="1" y="2" label="深南大道10000号" poiname="" /></msg>',
        "[位置]深南大道10000号",
        "location",
    ),
    (
        49,
        6,
        app(6, "<appattach><totallen>123456</totallen><fileext>pdf</fileext></appattach>", "季度报告.pdf"),
        "[文件]季度报告.pdf",
        "file",
    ),
    (49, 74, app(74, "", "季度报告.pdf"), "[文件]季度报告.pdf", "file"),
    (49, 3, app(3, "<url>http://y.qq.com</url><dataurl>http://x</dataurl>", "晴天"), "[音乐]晴天", "music"),
    (49, 76, app(76, "", "晴天"), "[音乐]晴天", "music"),
    (49, 92, app(92, "", "晴天"), "[音乐]晴天", "music"),
    (
        49,
        33,
        app(
            33,
            "<sourcedisplayname>拼多多</sourcedisplayname><weappinfo><appid>wx32</appid></weappinfo>",
            "拼单买水果",
        ),
        "[小程序]拼单买水果",
        "mini_program",
    ),
    (49, 36, app(36, "<sourcedisplayname>拼多多</sourcedisplayname>"), "[小程序]拼多多", "mini_program"),
    (
        49,
        19,
        app(
            19,
            '<recorditem><![CDATA[<recordinfo><datalist count="1"><dataitem datatype="1">'
            "<sourcename>张三</sourcename><datadesc>你好</datadesc></dataitem></datalist>"
            "</recordinfo>]]></recorditem>",
            "群聊的聊天记录",
        ),
        "[聊天记录]群聊的聊天记录",
        "chat_record",
    ),
    (
        49,
        24,
        app(24, "<recorditem><![CDATA[<recordinfo/>]]></recorditem>", "周末计划"),
        "[笔记]周末计划",
        "note",
    ),
    (49, 40, app(40, "", "收藏"), "[收藏]", "favorite"),
    (
        49,
        51,
        app(
            51,
            "<finderFeed><objectId>1</objectId><nickname>央视新闻</nickname><desc>今天天气真好</desc></finderFeed>",
            "当前微信版本不支持展示该内容，请升级至最新版本。",
        ),
        "[视频号]今天天气真好",
        "channels",
    ),
    (
        49,
        50,
        app(
            50,
            "<findernamecard><username>v2_x@finder</username><nickname>央视新闻</nickname></findernamecard>",
        ),
        "[视频号]央视新闻",
        "channels",
    ),
    (49, 63, app(63, "<finderLive><desc>直播中</desc></finderLive>"), "[视频号直播]", "channels_live"),
    (49, 88, app(88), "[视频号直播]", "channels_live"),
    (
        49,
        53,
        app(53, "", "#接龙 周六聚餐\n\n1. 张三\n2. 李四"),
        "#接龙 周六聚餐\n\n1. 张三\n2. 李四",
        "solitaire",
    ),
    (49, 1, app(1, "", "粘贴的一段话"), "粘贴的一段话", "app_text"),
    (49, 17, app(17, "", "我发起了位置共享"), "[位置共享]", "live_location"),
    (
        49,
        2001,
        '<msg><appmsg appid="" sdkver=""><des><![CDATA[我给你发了一个红包，赶紧去拆!]]></des>'
        "<type><![CDATA[2001]]></type><title><![CDATA[微信红包]]></title><wcpayinfo><sendertitle><![CDATA["
        "恭喜发财，大吉大利]]></sendertitle></wcpayinfo></appmsg></msg>",
        "[红包]",
        "red_packet",
    ),
    (10000, 0, "收到红包，请在手机上查看", "[红包]", "red_packet"),
    (49, 2003, app(2003, "", "红包封面"), "[红包封面]", "red_packet_cover"),
    (
        49,
        2011,
        app(2011, "<wcpayinfo><paysubtype>3</paysubtype></wcpayinfo>", "微信转账"),
        "[微信转账]",
        "transfer",
    ),
    (
        49,
        5,
        app(
            5,
            '<url>https://mp.weixin.qq.com/s/x</url><mmreader><category type="20" count="1">'
            "<item><title><![CDATA[公众号文章]]></title></item></category></mmreader>",
        ),
        "[外部链接]公众号文章",
        "link",
    ),
    (
        49,
        62,
        app(62, "<patinfo><fromusername>wxid_a</fromusername></patinfo>", '"张三" 拍了拍 "李四"'),
        '"张三" 拍了拍 "李四"',
        "pat",
    ),
    (49, 62, app(62, PAT_TEMPLATE), '"wxid_a" 拍了拍 "wxid_b"的肩膀', "pat"),
    (
        10002,
        0,
        '<sysmsg type="pat"><pat><fromusername>wxid_a</fromusername><chatusername>1@chatroom'
        "</chatusername><pattedusername>wxid_b</pattedusername><patsuffix><![CDATA[]]></patsuffix><template>"
        '<![CDATA["${wxid_a}" 拍了拍 "${wxid_b}"]]></template></pat></sysmsg>',
        '"wxid_a" 拍了拍 "wxid_b"',
        "pat",
    ),
    (10000, 4, '"张三" 拍了拍 "李四"', '"张三" 拍了拍 "李四"', "pat"),
    (10000, 0, '<revokemsg>"陈潇" 撤回了一条消息</revokemsg>', '"陈潇" 撤回了一条消息', "revoke"),
    (
        10000,
        0,
        '你撤回了一条消息 <![CDATA[<a href="weixin://revoke_edit_click">重新编辑</a>]]>',
        "你撤回了一条消息",
        "revoke",
    ),
    (
        10002,
        0,
        '<sysmsg type="revokemsg"><revokemsg><session>wxid_a</session><newmsgid>1</newmsgid>'
        '<replacemsg><![CDATA["陈潇" 撤回了一条消息]]></replacemsg></revokemsg></sysmsg>',
        '"陈潇" 撤回了一条消息',
        "revoke",
    ),
    (50, 0, VOIP, "[语音通话]通话时长 00:27", "voip"),
    (50, 0, "<voipinvitemsg><roomid>1</roomid><status>2</status></voipinvitemsg>", "[语音通话]", "voip"),
    (50, 0, "5", "[语音通话]已取消", "voip"),
    (50, 0, "11", "[语音通话]", "voip"),
    (37, 0, FRIEND_REQUEST, "[好友申请]张三", "friend_request"),
    (
        51,
        0,
        "<msg>\n<op id='5'>\n<username>wxid_a</username>\n<name>lastMessage</name>\n</op>\n</msg>",
        "[状态同步]",
        "status_op",
    ),
    (10000, 0, "你已添加了张三，现在可以开始聊天了。", "你已添加了张三，现在可以开始聊天了。", "system"),
    (
        10000,
        0,
        '<img src="SystemMessages_HongbaoIcon.png"/>  你领取了陈潇的<_wc_custom_link_ color="#FD9931" '
        'href="weixin://weixinhongbao/opendetail?sendid=1">红包</_wc_custom_link_>',
        "你领取了陈潇的红包",
        "system",
    ),
    (10002, 0, INVITE, '"张三"邀请"李四、王五"加入了群聊', "system"),
    (10000, 8000, INVITE, '"张三"邀请"李四、王五"加入了群聊', "system"),
    (49, 0, INVITE, '"张三"邀请"李四、王五"加入了群聊', "system"),  # Android 570425393: sysmsg under 49
    (
        10002,
        0,
        '<sysmsg type="delchatroommember"><delchatroommember><plain><![CDATA[你将"张三"移出了群聊]]>'
        '</plain><text><![CDATA[你将"张三"移出了群聊]]></text></delchatroommember></sysmsg>',
        '你将"张三"移出了群聊',
        "system",
    ),
]


@pytest.mark.parametrize(("base", "sub", "content", "text", "category"), CASES)
def test_each_type_renders(base: int, sub: int, content: str, text: str, category: str) -> None:
    out = render(base, sub, content, KEEP_ALL)
    assert (out.text, out.category, out.status, out.note) == (text, category, "ok", "")


def test_cases_cover_every_category() -> None:
    seen = {case[4] for case in CASES} | {case[4] for case in SEED_CASES}
    assert seen == set(CATEGORIES) - {"unknown"}


def test_default_drop_marks_but_still_renders() -> None:
    assert set(DEFAULT_DROP) <= set(CATEGORIES)
    out = render(10002, 0, INVITE)
    assert (out.text, out.status) == ('"张三"邀请"李四、王五"加入了群聊', "dropped")
    assert render(1, 0, "好").status == "ok"


# ---- quotes -------------------------------------------------------------------------------


def quote(ref_type: int, ref_content: str, title: str = "看这个") -> str:
    return app(
        57,
        f"<refermsg><type>{ref_type}</type><svrid>1</svrid><fromusr>wxid_a</fromusr>"
        f"<displayname>张三</displayname><content>{ref_content}</content></refermsg>",
        title,
    )


def test_quote_of_escaped_xml_shows_the_rendered_placeholder() -> None:
    article = (
        '&lt;msg&gt;&lt;appmsg appid="" sdkver="0"&gt;&lt;title&gt;一篇文章&lt;/title&gt;'
        "&lt;type&gt;5&lt;/type&gt;&lt;/appmsg&gt;&lt;/msg&gt;"
    )
    assert render(49, 57, quote(49, article)).quote == "张三: [外部链接]一篇文章"
    image = '&lt;msg&gt;&lt;img md5="5a07" length="240962" /&gt;&lt;/msg&gt;'
    assert render(49, 57, quote(3, image)).quote == "张三: [手机图片]"
    in_group = "wxid_a:\n" + article  # a quoted group message may keep its sender prefix
    assert render(49, 57, quote(49, in_group)).quote == "张三: [外部链接]一篇文章"
    assert render(49, 57, quote(47, "wxid_a:0:1:9851::0")).quote == "张三: [表情包]"


def test_quote_of_a_quote_shows_only_its_reply() -> None:
    inner = quote(1, "最里面").replace("<", "&lt;").replace(">", "&gt;")
    out = render(49, 57, quote(49, inner, "外层"), RenderConfig(quote_context=True))
    assert (out.text, out.quote) == ("外层「张三: 看这个」", "张三: 看这个")


def test_quote_without_refermsg_is_still_filled() -> None:
    assert render(49, 57, app(57, "", "只回了一句")) == Rendered("只回了一句", "quote", "ok", 57, f": {UNKNOWN_TEXT}")


# ---- entities, config ----------------------------------------------------------------------


def test_double_escaped_entities_are_undone_in_fields_not_in_text() -> None:
    out = render(49, 5, app(5, "", "第一行&amp;#x0A;第二行 &amp;quot;引号&amp;quot;"))
    assert out.text == '[外部链接]第一行\n第二行 "引号"'
    assert render(42, 0, '<msg username="wxid_a" nickname="A&amp;amp;B" />').text == "[名片推荐]A&B"
    assert render(49, 57, quote(1, "你好&amp;#x20;呀")).quote == "张三: 你好 呀"
    assert render(1, 0, "a &amp; b &#x0A;").text == "a &amp; b &#x0A;"  # typed text is never unescaped


def test_bare_ampersands_and_html_entities_keep_their_text() -> None:
    cut_off = '<msg><appmsg appid="" sdkver="0"><title>Q&A 合集 7</title><type>5</type><url>https://x?a=1&b=2'
    assert render(49, 0, cut_off) == Rendered("[外部链接]Q&A 合集 7", "link", "ok", 5)
    assert render(49, 5, app(5, "", "A&nbsp;B &lt; C")).text == "[外部链接]A\xa0B < C"


def test_placeholder_override_and_drop() -> None:
    cfg = RenderConfig(placeholders={"image": "[图片]", "link": "[链接] "}, drop=["image"])
    assert render(3, 0, seed("image.xml"), cfg) == Rendered("[图片]", "image", "dropped", 0)
    assert render(49, 4, seed("link.xml"), cfg).text.startswith("[链接] 凌晨四点起床")
    assert render(49, 4, seed("link.xml"), cfg).status == "ok"


def test_config_rejects_unknown_category_names() -> None:
    with pytest.raises(ValidationError, match="unknown categories"):
        RenderConfig(placeholders={"picture": "[图]"})


# ---- bad input: never raises, says why ------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "sub", "content", "expected"),
    [
        (49, 5, "<<<>>>&&&", Rendered("[外部链接]", "link", "failed", 5, "", "unparseable appmsg XML")),
        (
            49,
            5,
            "<msg><appmsg><title>半截标题</title><type>5</type><url>http://x",
            Rendered("[外部链接]半截标题", "link", "ok", 5),
        ),
        (49, 57, "", Rendered(UNKNOWN_TEXT, "quote", "failed", 57, "", "empty content")),
        (49, 0, "", Rendered(UNKNOWN_TEXT, "unknown", "failed", 0, "", "empty content")),
        (1, 0, "", Rendered(UNKNOWN_TEXT, "text", "failed", 0, "", "empty content")),
        (42, 0, "", Rendered("[名片推荐]", "card", "failed", 0, "", "empty content")),
        (9999, 3, "<msg/>", Rendered(UNKNOWN_TEXT, "unknown", "unknown", 3, "", "unknown type 9999")),
        (
            49,
            0,
            app(9999, "", "新玩意"),
            Rendered(UNKNOWN_TEXT, "unknown", "unknown", 9999, "", "unknown appmsg type 9999"),
        ),
        (
            49,
            5,
            "<html><body>hi</body></html>",
            Rendered("[外部链接]", "link", "failed", 5, "", "expected <appmsg>, got <html>"),
        ),
        (
            48,
            0,
            "<foo>bar</foo>",
            Rendered("[位置]", "location", "failed", 0, "", "expected <location>, got <foo>"),
        ),
        (48, 0, "就是一段话", Rendered("[位置]", "location", "failed", 0, "", "unparseable location XML")),
        (
            10002,
            0,
            "<msg>不是系统消息</msg>",
            Rendered(UNKNOWN_TEXT, "system", "failed", 0, "", "expected <sysmsg>, got <msg>"),
        ),
        (
            10002,
            0,
            '<sysmsg type="ClientCheckConsistency"><ClientCheckConsistency><clientcheck/>'
            "</ClientCheckConsistency></sysmsg>",
            Rendered(UNKNOWN_TEXT, "system", "unknown", 0, "", "unknown sysmsg type 'ClientCheckConsistency'"),
        ),
        (
            49,
            5,
            "<msg><appmsg><title>\ud800坏</title><type>5</type></appmsg></msg>",
            Rendered("[外部链接]?坏", "link", "ok", 5),
        ),
    ],
)
def test_bad_content_fails_softly(base: int, sub: int, content: str, expected: Rendered) -> None:
    assert render(base, sub, content, KEEP_ALL) == expected


def test_megabyte_xml_is_cut_to_max_chars() -> None:
    huge = app(5, "<des>" + "x" * 500_000 + "</des>", "长" * 1_000_000)
    out = render(49, 0, huge)
    assert len(out.text) == 4000 and out.text == "[外部链接]" + "长" * 3993 + "…"
    assert render(1, 0, "哈" * 1_000_000, RenderConfig(max_chars=16)).text == "哈" * 15 + "…"
    garbage = render(10002, 0, "<sysmsg " + "&#" * 500_000, KEEP_ALL)
    assert garbage == Rendered(UNKNOWN_TEXT, "system", "unknown", 0, "", "unknown sysmsg type ''")


# ---- the table itself ------------------------------------------------------------------------


def test_every_category_is_documented() -> None:
    for name, category in CATEGORIES.items():
        assert category.name == name and category.doc.strip(), name
    assert {category for category, _ in TABLE.values()} <= set(CATEGORIES)


BASES = [0, 1, 3, 34, 37, 42, 43, 47, 48, 49, 50, 51, 62, 64, 65, 66, 10000, 10002, 99999, -1]
SUBS = sorted({0, 1, 4, 57, 9999, -5} | {sub for _, sub in TABLE if sub != ANY})


@pytest.mark.parametrize("base", BASES)
def test_sweep_never_leaves_categories_or_raises(base: int) -> None:
    for sub in SUBS:
        for content in ("", "garbage", "<msg/>", app(sub, "", "t"), '<sysmsg type="x"/>', "<voipmsg/>"):
            out = render(base, sub, content)
            assert out.category in CATEGORIES and out.text, (base, sub, content)
            assert out.status in {"ok", "dropped", "unknown", "failed"}
            assert out.status != "ok" or not out.note
