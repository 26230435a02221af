"""Message bodies with the XML shapes real Android exports contain (reference §1.4 and §4).

Templates follow the seed write-up's verbatim rows (quote, bilibili link, image, transfer,
group notice, red-packet system line, card, sticker) with titles, ids and md5s varied.
Each builder is pure given the `random.Random` it is handed and returns the `content`
string (plus `imgPath` where Android keeps one).
"""

from __future__ import annotations

import random
from xml.sax.saxutils import escape, quoteattr

LINK_TITLES = (
    "打工人的周一能有多离谱",
    "2023年最值得去的十个小众景点",
    "一文看懂个税年度汇算",
    "这家火锅店排队三小时值不值",
    "程序员如何优雅地摸鱼",
    "猫咪为什么总在半夜跑酷",
)
BILI_TITLES = (
    "凌晨四点起床，我见到了传说中的“接天莲叶无穷碧，映日荷花别样红”",
    "【4K】用一百块挑战吃遍夜市",
    "当你把王者打成了恐怖游戏",
    "十分钟看完《三体》全集",
)
FILE_NAMES = (
    ("周报-第{n}周.docx", "docx"),
    ("项目排期v{n}.xlsx", "xlsx"),
    ("合同扫描件{n}.pdf", "pdf"),
    ("照片合集{n}.zip", "zip"),
    ("会议纪要{n}.pptx", "pptx"),
)
MUSIC = (("晴天", "周杰伦"), ("孤勇者", "陈奕迅"), ("稻香", "周杰伦"), ("海阔天空", "Beyond"), ("小幸运", "田馥甄"))
MINI_APPS = (
    ("美团外卖", "这家店满30减15"),
    ("滴滴出行", "帮我打个车"),
    ("拼多多", "帮我砍一刀"),
    ("腾讯文档", "周末出游报名表"),
    ("12306", "车票信息"),
)
CHANNEL_DESCS = ("周末vlog｜去海边看日落", "三分钟学会红烧肉", "这只猫成精了", "上班族午休拉伸")
PLACES = (
    ("31.230416", "121.473701", "上海市黄浦区人民大道200号", "人民广场"),
    ("30.259244", "120.130370", "浙江省杭州市西湖区龙井路1号", "西湖风景区"),
    ("22.543096", "114.057865", "广东省深圳市福田区福华三路", "会展中心"),
    ("31.143225", "121.657902", "上海市浦东新区川沙镇黄赵路310号", "上海迪士尼度假区"),
)
ARTICLES = {
    "pay": "微信支付凭证",
    "bank": "您的账单已出",
    "news": "今日要闻速览",
    "video": "你关注的UP主更新了",
    "health": "春季过敏怎么办",
    "food": "疯狂星期四 会员专享",
}
APP_TAIL = "<fromusername>{frm}</fromusername><scene>0</scene><appinfo><version>1</version><appname /></appinfo>"


def hex32(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _appmsg(subtype: int, title: str, body: str, frm: str, appid: str = "") -> str:
    return (
        f'<msg><appmsg appid="{appid}" sdkver="0"><title>{escape(title)}</title><type>{subtype}</type>'
        f"{body}</appmsg>" + APP_TAIL.format(frm=frm) + "<commenturl /></msg>"
    )


def image(rng: random.Random) -> tuple[str, str]:
    md5, aes, size = hex32(rng), hex32(rng), rng.randint(20_000, 900_000)
    cdn = "3057020100044b30490201000204" + hex32(rng) + hex32(rng)
    content = (
        f'<msg><img cdnbigimgurl="null" hdlength="0" length="{size}" cdnthumbaeskey="{aes}" '
        f'md5="{md5}" hevc_mid_size="{size}" cdnthumbwidth="120" cdnthumbheight="90" aeskey="{aes}" '
        f'cdnthumblength="{size // 45}" encryver="1" cdnmidimgurl="{cdn}" '
        f'cdnthumburl="{cdn}" /></msg>'
    )
    return content, f"THUMBNAIL_DIRPATH://th_{hex32(rng)}"


def voice(rng: random.Random, sender: str) -> tuple[str, str]:
    ms = rng.randint(1, 59) * 1000 + rng.randint(0, 999)
    path = f"{rng.getrandbits(64):016x}{rng.getrandbits(32):08x}"
    if rng.random() < 0.8:  # Android's own row form
        return f"{sender}:{ms}:0\n", path
    return (
        f'<msg><voicemsg endflag="1" cancelflag="0" forwardflag="0" voiceformat="4" voicelength="{ms}" '
        f'length="{ms * 2}" bufid="0" aeskey="{hex32(rng)}" voiceurl="" clientmsgid="{hex32(rng)}" '
        f'fromusername="{sender}" /></msg>'
    ), path


def video(rng: random.Random, sender: str) -> tuple[str, str]:
    secs, md5 = rng.randint(3, 180), hex32(rng)
    content = (
        f'<?xml version="1.0"?>\n<msg><videomsg aeskey="{hex32(rng)}" cdnthumbaeskey="{hex32(rng)}" '
        f'cdnvideourl="3057{hex32(rng)}" length="{secs * 180_000}" playlength="{secs}" '
        f'fromusername="{sender}" md5="{md5}" isad="0" /></msg>'
    )
    return content, f"{rng.getrandbits(64):016x}"


def sticker(rng: random.Random, sender: str, md5: str, mine: bool) -> tuple[str, str]:
    """Mostly Android's `<user>:0:<mine>:<md5>::0` row; some forwarded `<msg><emoji>` XML."""
    if rng.random() < 0.85:
        return f"{sender}:0:{int(mine)}:{md5}::0", md5
    return (
        f'<msg><emoji fromusername="{sender}" tousername="" type="2" md5="{md5}" '
        f'len="{rng.randint(5000, 90000)}" '
        f'productid="" cdnurl="http://wxapp.tc.qq.com/262/20304/stodownload?m={md5}" width="240" '
        f'height="240" /></msg>'
    ), md5


def location(rng: random.Random) -> str:
    x, y, label, poi = rng.choice(PLACES)
    return (
        f'<?xml version="1.0"?>\n<msg>\n\t<location x="{x}" y="{y}" scale="16" label="{label}" '
        f'maptype="roadmap" poiname="{poi}" poiid="qqmap_{rng.getrandbits(60)}" />\n</msg>\n'
    )


def card(wxid: str, nickname: str, alias: str, rng: random.Random) -> str:
    return (
        f'<msg username="{wxid}" nickname={quoteattr(nickname)} alias="{alias}" fullpy="" shortpy="" '
        f'imagestatus="3" scene="17" province="上海" city="闵行" sign="" percard="0" '
        f'sex="{rng.choice((1, 2))}" certflag="0" certinfo="" brandIconUrl="" '
        'regionCode="CN_Shanghai_Minhang"/>'
    )


def link(rng: random.Random, frm: str) -> str:
    title = rng.choice(LINK_TITLES)
    body = (
        f"<des>{escape(title[:12])}…</des><action>view</action><url>https://mp.weixin.qq.com/s/"
        f"{hex32(rng)[:22]}</url><thumburl>https://mmbiz.qpic.cn/{hex32(rng)}</thumburl>"
    )
    return _appmsg(5, title, body, frm)


def bili(rng: random.Random, frm: str) -> str:
    """The seed's type-4 bilibili share (trimmed of its empty tail elements)."""
    title, plays = rng.choice(BILI_TITLES), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}万"
    body = (
        f"<des>UP主：张力视觉&#x0A;播放：{plays}</des><username></username><action>view</action>"
        f"<showtype>0</showtype><content></content><url>https://b23.tv/{hex32(rng)[:7]}?share_medium="
        f"android&amp;share_source=weixin&amp;ts={rng.getrandbits(40)}</url><lowurl></lowurl>"
        "<appattach><totallen>0</totallen><attachid></attachid><emoticonmd5></emoticonmd5><fileext>"
        "</fileext></appattach><extinfo></extinfo><androidsource>2</androidsource>"
        "<statextstr>GhQKEnd4Y2I4ZDQyOThjNmEwOWJjYg==</statextstr>"
    )
    return _appmsg(4, title, body, frm, appid="wxcb8d4298c6a09bcb")


def file(rng: random.Random, frm: str) -> str:
    name, ext = rng.choice(FILE_NAMES)
    body = (
        f"<des></des><action>view</action><appattach><totallen>{rng.randint(10_000, 30_000_000)}"
        f"</totallen><attachid>@cdn_{hex32(rng)}_1</attachid><fileext>{ext}</fileext></appattach>"
        f"<md5>{hex32(rng)}</md5>"
    )
    return _appmsg(6, name.format(n=rng.randint(1, 52)), body, frm)


def quote(
    title: str, frm: str, ref_type: int, svrid: int, ref_from: str, ref_name: str, ref_content: str, ref_time_s: int
) -> str:
    body = (
        f"<des /><appattach><cdnthumbaeskey /><aeskey></aeskey></appattach><refermsg><type>{ref_type}"
        f"</type><svrid>{svrid}</svrid><fromusr>{ref_from}</fromusr><chatusr /><displayname>"
        f"{escape(ref_name)}</displayname><content>{escape(ref_content)}</content><createtime>"
        f"{ref_time_s}</createtime></refermsg>"
    )
    return _appmsg(57, title, body, frm)


def transfer(rng: random.Random, payer: str, receiver: str, now_s: int, subtype: int) -> str:
    """Seed's 微信转账 row; paysubtype 1 = sent, 3 = received."""
    yuan = f"{rng.choice((1, 20, 50, 88, 100, 200, 500, 1000)) + rng.choice((0, 0, 0.5, 0.66)):.2f}"
    return (
        f'<msg><appmsg appid="" sdkver=""><title><![CDATA[微信转账]]></title><des><![CDATA[收到转账'
        f"{yuan}元。如需收钱，请点此升级至最新版本]]></des><action /><type>2000</type>"
        f"<content><![CDATA[]]>"
        f"</content><url><![CDATA[https://support.weixin.qq.com/cgi-bin/mmsupport-bin/readtemplate?t=page/"
        f"common_page__upgrade&text=text001&btn_text=btn_text_0]]></url><lowurl /><extinfo /><wcpayinfo>"
        f"<paysubtype>{subtype}</paysubtype><feedesc><![CDATA[￥{yuan}]]></feedesc><transcationid><![CDATA["
        f"{hex32(rng)}]]></transcationid><transferid><![CDATA[1000050001{rng.getrandbits(60)}]]>"
        f"</transferid><invalidtime><![CDATA[{now_s + 86400}]]></invalidtime><begintransfertime><![CDATA["
        f"{now_s}]]></begintransfertime><effectivedate><![CDATA[1]]></effectivedate><pay_memo><![CDATA["
        f"{rng.choice(('', '', '房租', '饭钱', '还你的'))}]]></pay_memo>"
        f"<receiver_username><![CDATA[{receiver}"
        f"]]></receiver_username><payer_username><![CDATA[{payer}]]></payer_username></wcpayinfo>"
        f"</appmsg></msg>"
    )


def red_packet(rng: random.Random, frm: str) -> tuple[str, str]:
    """Returns (content, sendid) so the 'X领取了你的红包' system line can point at it."""
    wish = rng.choice(("恭喜发财，大吉大利", "新年快乐", "生日快乐", "辛苦了"))
    sendid = f"10000398{rng.getrandbits(70)}"
    body = (
        f"<des><![CDATA[我给你发了一个红包，赶紧去拆!]]></des><url><![CDATA[https://wxapp.tenpay.com/"
        f"mmpayhb/wxhb_personalreceive?sendid={sendid}]]></url><wcpayinfo><templateid>{hex32(rng)}"
        f"</templateid><scenetext><![CDATA[微信红包]]></scenetext><sendertitle><![CDATA[{wish}]]>"
        f"</sendertitle><receivertitle><![CDATA[{wish}]]></receivertitle><nativeurl><![CDATA[wxpay://c2cbiz"
        f"/hongbao/receivehongbao?sendid={sendid}]]></nativeurl><sceneid><![CDATA[1002]]></sceneid>"
        f"</wcpayinfo>"
    )
    return _appmsg(2001, "微信红包", body, frm), sendid


def announcement(rng: random.Random, frm: str, group: str, now_s: int) -> str:
    text = rng.choice(
        (
            "本周六下午两点老地方集合，不来的发红包",
            "群里禁止发广告，违者踢出",
            "项目二期上线时间调整为下周三，请各位排期",
            "春节值班表已更新，请查看",
        )
    )
    ann_id = f"{frm}_{group}_{now_s}_{rng.getrandbits(30)}"
    return (
        f'<msg><appmsg appid="" sdkver="0"><type>87</type><url>https://support.weixin.qq.com/cgi-bin/'
        f"mmsupport-bin/readtemplate?t=page/common_page__upgrade&amp;btn_text=btn_text_0&amp;text=text008"
        f"</url><announcement><![CDATA[<group_notice_item><edittime>{now_s}</edittime>"
        f'<datalist count="1">'
        f'<dataitem dataid="{hex32(rng)}" datatype="1" htmlid="-1"><datadesc>{text}</datadesc></dataitem>'
        f'</datalist><source sourceid="{hex32(rng)}"><fromusr>{frm}</fromusr><tousr>{group}</tousr>'
        f"</source><announcement_id>{ann_id}</announcement_id></group_notice_item>]]></announcement>"
        f"<textannouncement><![CDATA[{text}]]></textannouncement><xmlpuretext><![CDATA[0]]></xmlpuretext>"
        f"<announcement_id><![CDATA[{ann_id}]]></announcement_id></appmsg><fromusername><![CDATA[{frm}]]>"
        f"</fromusername><appinfo><version>1</version><appname /></appinfo></msg>"
    )


def pat(rng: random.Random, who: str, whom: str, who_name: str, whom_name: str, chat: str, now_s: int) -> str:
    tail = rng.choice(("", "", "的小脑袋", "并说好的捏"))
    body = (
        f"<des /><url /><patMsg><chatUser>{chat}</chatUser><records><recordNum>1</recordNum><record>"
        f"<fromUser>{who}</fromUser><pattedUser>{whom}</pattedUser>"
        f'<templete><![CDATA["${{{who}}}" 拍了拍 '
        f'"${{{whom}}}"{tail}]]></templete><createTime>{now_s}</createTime><readStatus>1</readStatus>'
        f"<svrId>{rng.getrandbits(62)}</svrId></record></records></patMsg>"
    )
    return _appmsg(62, f'"{who_name}" 拍了拍 "{whom_name}"{tail}', body, who)


def chat_record(rng: random.Random, frm: str, lines: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<dataitem datatype="1" dataid="{hex32(rng)}"><datadesc>{escape(text)}</datadesc><sourcename>'
        f"{escape(name)}</sourcename><sourcetime>2023-{rng.randint(1, 12)}-{rng.randint(1, 28)} "
        f"{rng.randint(8, 23)}:{rng.randint(0, 59):02d}</sourcetime></dataitem>"
        for name, text in lines
    )
    desc = "\n".join(f"{name}: {text}" for name, text in lines)
    record = (
        f"<recordinfo><title>群聊的聊天记录</title><desc>{escape(desc)}</desc>"
        f'<datalist count="{len(lines)}">'
        f"{items}</datalist><favusername>{frm}</favusername></recordinfo>"
    )
    body = f"<des>{escape(desc)}</des><recorditem><![CDATA[{record}]]></recorditem>"
    return _appmsg(19, "群聊的聊天记录", body, frm)


def mini_program(rng: random.Random, frm: str) -> str:
    app, title = rng.choice(MINI_APPS)
    body = (
        f"<des /><sourcedisplayname>{app}</sourcedisplayname><weappinfo><username><![CDATA[gh_"
        f"{rng.getrandbits(48):012x}@app]]></username><appid><![CDATA[wx{rng.getrandbits(64):016x}]]></appid>"
        f"<pagepath><![CDATA[pages/index/index.html]]></pagepath><type>2</type></weappinfo>"
    )
    return _appmsg(33, title, body, frm)


def music(rng: random.Random, frm: str) -> str:
    song, singer = rng.choice(MUSIC)
    body = (
        f"<des>{singer}</des><action>view</action><url>https://y.qq.com/n/ryqq/songDetail/"
        f"{hex32(rng)[:14]}</url><dataurl>http://isure.stream.qqmusic.qq.com/C400{hex32(rng)[:14]}.m4a"
        f"</dataurl>"
    )
    return _appmsg(3, song, body, frm, appid="wx5aa333606550dfd5")


def channels(rng: random.Random, frm: str) -> str:
    desc = rng.choice(CHANNEL_DESCS)
    body = (
        f"<des /><finderFeed><objectId>{rng.getrandbits(63)}</objectId><nickname>"
        f"{rng.choice(('日常vlog', '美食博主阿强', '猫咪日记'))}</nickname><desc>{desc}</desc>"
        f"<mediaCount>1"
        f"</mediaCount></finderFeed>"
    )
    return _appmsg(51, "当前微信版本不支持展示该内容，请升级至最新版本。", body, frm)


def voip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        text = f"通话时长 {rng.randint(0, 40):02d}:{rng.randint(0, 59):02d}"
    else:
        text = rng.choice(("已取消", "对方已拒绝", "对方无应答"))
    return (
        f'<voipmsg type="VoIPBubbleMsg"><VoIPBubbleMsg><msg><![CDATA[{text}]]></msg><room_type>'
        f"{rng.choice((0, 1))}</room_type><red_dot>false</red_dot><roomid>{rng.getrandbits(60)}</roomid>"
        f"<roomkey>0</roomkey><inviteid>{rng.getrandbits(31)}</inviteid><msg_type>100</msg_type>"
        f"<timestamp>{rng.getrandbits(40)}</timestamp><identity><![CDATA[{rng.getrandbits(63)}]]>"
        f"</identity><duration>0</duration></VoIPBubbleMsg></voipmsg>"
    )


def friend_request(rng: random.Random, wxid: str, nickname: str, pinyin: str) -> str:
    ticket = f"v4_000b708f0b04000001000000000{hex32(rng)[:20]}@stranger"
    return (
        f'<msg fromusername="{wxid}" '
        f'encryptusername="v3_020b3826fd0301000000000{hex32(rng)[:20]}@stranger" '
        f'fromnickname={quoteattr(nickname)} content="我是{escape(nickname)}" '
        f'fullpy="{pinyin.replace(" ", "")}" '
        f'shortpy="" imagestatus="3" scene="{rng.choice((14, 30, 6))}" country="CN" province="" city="" '
        f'sign="" percard="1" sex="{rng.choice((1, 2))}" alias="" weibo="" albumflag="0" snsflag="1" '
        f'ticket="{ticket}" opcode="2" chatroomusername="" sourceusername="" sourcenickname="">'
        f'<brandlist count="0" ver="0"></brandlist></msg>'
    )


def article(rng: random.Random, frm: str, theme: str) -> str:
    """An official account push (mmreader), stored as Android type 285212721."""
    title = ARTICLES.get(theme, "今日推送")
    return (
        f'<msg><appmsg appid="" sdkver="0"><title><![CDATA[{title}]]></title>'
        f"<des><![CDATA[点击查看详情]]>"
        f"</des><type>5</type><url><![CDATA[http://mp.weixin.qq.com/s?__biz={hex32(rng)[:16]}&mid="
        f'{rng.getrandbits(31)}]]></url><mmreader><category type="20" count="1">'
        f"<name><![CDATA[{title}]]>"
        f"</name><item><title><![CDATA[{title}]]></title><url><![CDATA[http://mp.weixin.qq.com/s/"
        f"{hex32(rng)[:22]}]]></url></item></category><publisher><username><![CDATA[{frm}]]></username>"
        f"</publisher></mmreader></appmsg><fromusername><![CDATA[{frm}]]></fromusername></msg>"
    )


def malformed(rng: random.Random, frm: str) -> str:
    """A type-49 row whose XML is cut off and has a bare '&' (seen after crashes/upgrades)."""
    return (
        f'<msg><appmsg appid="" sdkver="0"><title>Q&A 合集 {rng.randint(1, 99)}</title><type>5</type>'
        f"<url>https://mp.weixin.qq.com/s?a=1&b={rng.getrandbits(20)}</url><thumburl>"
    )


def unknown(rng: random.Random) -> str:
    return (
        f'<msg><newfeature id="{rng.getrandbits(20)}">当前版本不支持展示该内容，请升级至最新版本。</newfeature></msg>'
    )


INVALID_UTF8 = "我到了".encode() + b"\xff\xfe" + "你在哪".encode() + "吗".encode()[:2]


def hongbao_taken(name: str, sendid: str, mine: bool) -> str:
    """The seed's red-packet system line (type 10000)."""
    what = f"{name}领取了你的" if mine else f"你领取了{name}的"
    return (
        f'<img src="SystemMessages_HongbaoIcon.png"/>  {what}<_wc_custom_link_ color="#FD9931" '
        f'href="weixin://weixinhongbao/opendetail?sendid={sendid}">红包</_wc_custom_link_>'
    )
