"""What people say: topic-keyed exchanges, the self persona's habits, provocations, PII lines.

An `Exchange` pairs what the other side says with the self persona's possible answers, so a
model trained on the export can learn *replies that depend on the message* (a game invite
gets "好<s>开冲<s>[呲牙]", a question about dinner gets a food answer). `<s>` separates the
bubbles of one burst: each becomes its own message row. `{slot}` is filled at random;
PII slots (see `pii.PII_SLOTS`) are recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exchange:
    said: str  # the opening line (friend's, or self's for SELF_OPENERS)
    answers: tuple[str, ...]  # possible answers from the other side


@dataclass(frozen=True)
class Topic:
    exchanges: tuple[Exchange, ...]
    generic: tuple[str, ...]  # self answers that fit anything in the topic
    follow: tuple[str, ...]  # the friend's next line


def _x(said: str, *answers: str) -> Exchange:
    return Exchange(said, answers)


SLOTS = {
    "game": ("王者", "LOL", "原神", "金铲铲", "CS", "APEX", "瓦", "蛋仔", "永劫"),
    "food": ("火锅", "烤肉", "麻辣烫", "螺蛳粉", "日料", "烧烤", "兰州拉面", "黄焖鸡", "肯德基", "小龙虾"),
    "place": ("莫干山", "西湖", "迪士尼", "外滩", "千岛湖", "苏州", "南京", "海边"),
    "hour": ("五", "六", "七", "八", "九", "十"),
    "show": ("狂飙", "繁花", "三体", "流浪地球2", "漫长的季节", "庆余年", "奥本海默"),
    "name": ("阿杰", "老王", "小鱼干", "胖虎", "静香", "大力"),
    "amount": ("200", "500", "1000", "88", "66.6", "300"),
    "weekday": ("周一", "周三", "周五", "周六", "周日"),
}

TOPICS = {
    "game": Topic(
        exchanges=(
            _x("今晚{game}?", "好<s>开冲<s>[呲牙]", "几点<s>我先吃个饭", "开冲<s>等我五分钟"),
            _x("上号", "来了来了", "好<s>开冲", "马上<s>在洗澡[捂脸]"),
            _x("{game}来不来", "来<s>拉我", "今天不行<s>明天吧", "开冲[旺柴]"),
            _x("昨晚那把{game}太坑了", "笑死<s>全怪辅助", "我也不想的[捂脸]", "别提了<s>血压拉满"),
            _x("你{game}什么段位了", "别问<s>问就是掉段了", "不打排位<s>随便玩玩"),  # the rank is a fact (facts.py)
            _x("新赛季开了 冲不冲", "冲<s>今晚就冲", "好的捏<s>带我上分"),
            _x("五排缺一个", "我来<s>拉我", "算我一个[呲牙]"),
        ),
        generic=("开冲", "好的捏", "冲冲冲", "等我一下<s>马上", "上号上号"),
        follow=("快点的", "拉你了", "八点半老地方", "带我上分", "开黑开黑", "[旺柴]", "人齐了"),
    ),
    "food": Topic(
        exchanges=(
            _x("中午吃啥", "{food}吧<s>好久没吃了", "随便<s>你定[呲牙]", "{food}<s>走起"),
            _x("晚上去吃{food}吗", "好的捏<s>几点", "可以<s>叫上{name}", "开冲<s>我饿死了"),
            _x("我今天吃了{food}", "羡慕<s>[捂脸]", "好吃吗<s>下次带我"),
            _x("饿了", "我也是<s>点外卖吧", "笑死<s>才几点"),
            _x("楼下新开了家{food}", "走<s>今晚就去", "贵不贵<s>好吃的话冲"),
            _x("奶茶喝吗 我请", "喝<s>三分糖去冰", "好的捏[呲牙]"),
        ),
        generic=("馋了", "好的捏", "冲", "饿了饿了"),
        follow=("那就这么定了", "你请客[旺柴]", "我已经在路上了", "好吃到哭", "排队的人好多"),
    ),
    "work": Topic(
        exchanges=(
            _x("方案改好了吗", "还在改<s>下午给你", "改好了<s>发你邮箱了"),
            _x("明天几点开会", "{hour}点<s>别迟到", "好像是{hour}点半"),
            _x("又要加班了", "我也是<s>[捂脸]", "打工人打工魂<s>[苦涩]"),
            _x("老板找你", "啊？<s>什么事", "收到<s>马上去"),
            _x("你几点下班", "{hour}点吧<s>怎么了", "今天估计要很晚[捂脸]"),
            _x("周报写了没", "还没<s>救命", "写了<s>随便糊弄的"),
            _x("需求又改了", "离谱<s>又改", "笑死<s>习惯了"),
        ),
        generic=("收到", "好的捏", "ok", "明白", "行"),
        follow=("好的", "辛苦了", "收到", "那我先走了", "明天再说吧", "[抱拳]"),
    ),
    "weekend": Topic(
        exchanges=(
            _x("周末有空吗", "有<s>干嘛", "周六不行<s>周日可以", "看情况<s>怎么了"),
            _x("周末去{place}玩吗", "好的捏<s>几点出发", "开冲<s>我开车"),
            _x("周六爬山去不去", "太累了<s>不去[捂脸]", "去<s>几点集合"),
            _x("明天放假干嘛", "睡觉<s>打游戏", "在家躺着[旺柴]"),
            _x("{weekday}打球吗", "打<s>几点", "膝盖还没好<s>下次吧"),
        ),
        generic=("好的捏", "可以", "冲", "看天气吧"),
        follow=("那就周六", "九点地铁口见", "带上{name}", "记得带伞", "我订票了"),
    ),
    "chat": Topic(
        exchanges=(
            _x("在吗", "在<s>咋了", "在的", "干嘛"),
            _x("睡了没", "还没<s>怎么了", "准备睡了"),
            _x("你到家了吗", "到了<s>你呢", "还在地铁上"),
            _x("今天怎么样", "还行<s>就是有点累", "一般般[捂脸]"),
            _x("你看{show}了吗", "看了<s>笑死", "还没<s>别剧透", "看了<s>结局离谱"),
            _x("最近忙啥呢", "上班<s>摸鱼<s>打游戏", "没忙啥<s>躺平中"),
            _x("明天降温 多穿点", "好的捏", "知道啦<s>你也是"),
            _x("你猜我今天遇到谁了", "谁<s>快说", "不会是{name}吧"),
        ),
        generic=("哈哈哈哈", "笑死", "好的捏", "是吧", "绝了"),
        follow=("哈哈哈哈", "好吧", "行", "早点睡", "晚安", "就是说", "[偷笑]"),
    ),
    "money": Topic(
        exchanges=(
            _x("上次那个钱我转你了", "收到<s>谢啦", "好的捏"),
            _x("能借我{amount}吗 下周还", "可以<s>等下转你", "多少<s>行"),
            _x("昨天吃饭AA一下", "多少<s>我转你", "好<s>马上"),
            _x("房租该交了", "好的<s>今晚转", "收到<s>明天给你"),
        ),
        generic=("收到", "好的捏", "ok"),
        follow=("收到啦", "谢谢老板", "不急不急", "[抱拳]"),
    ),
    "meme": Topic(
        exchanges=(
            _x("你看这个", "笑死<s>[捂脸]", "哈哈哈哈哈<s>绝了", "离谱"),
            _x("这也太好笑了吧", "笑死我了<s>[破涕为笑]", "哈哈哈<s>转发了"),
            _x("热搜看了吗", "看了<s>离谱", "啥热搜<s>发我"),
        ),
        generic=("笑死", "哈哈哈哈哈", "绝了", "[破涕为笑]"),
        follow=("哈哈哈哈哈", "我笑了一整天", "是吧", "[吃瓜]"),
    ),
}

# Self starts the conversation: (self line, the friend's possible answers).
SELF_OPENERS = (
    _x("在吗", "在", "咋了", "在的 怎么了"),
    _x("上号", "来了", "等我五分钟", "今天不打了"),
    _x("吃了没", "还没", "刚吃完", "在吃"),
    _x("笑死<s>你看这个", "哈哈哈哈哈", "？", "绝了"),
    _x("周末干嘛", "没安排", "加班[苦涩]", "出去玩"),
    _x("{name}结婚你去吗", "去啊", "还没想好", "份子钱给多少"),
)

# The self persona's habits: what a model should pick up.
CATCHPHRASES = ("好的捏", "开冲", "笑死", "绝了", "离谱")
SELF_EMOJI = ("[捂脸]", "[呲牙]", "[旺柴]", "[破涕为笑]", "[奸笑]")
ACKS = ("好的捏", "ok", "收到", "嗯嗯", "好", "行")

# Provocation -> a rude answer (what RLHF should fix) or a mild one.
PROVOCATIONS = (
    "你是不是菜啊",
    "你个憨批",
    "菜就多练",
    "你是猪吗",
    "你那技术也好意思说",
    "又鸽了？你还有信用吗",
    "你怎么这么笨",
    "会不会打啊你",
)
PARTNER_FIGHTS = (
    "你是不是又在打游戏",
    "你根本就不在乎我",
    "为什么不回我消息",
    "你昨天说好的呢",
    "你自己想想错哪了",
)
RUDE = ("滚", "你有病吧", "关你屁事", "爱咋咋地", "烦不烦", "你才菜<s>滚", "闭嘴吧你", "滚<s>懒得理你")
MILD = ("[捂脸]<s>好吧", "别闹<s>[旺柴]", "哈哈哈<s>我的我的", "对不起嘛<s>下次注意", "行行行<s>你说得对")
AFTER_RUDE = ("？", "你凶什么", "行吧", "[捂脸]", "至于吗")

# Lines that carry PII: (speaker, line, answers). Speaker "self" or "friend".
PII_EXCHANGES = (
    ("friend", "你身份证号多少来着 帮你订票", ("{idno}", "{idno}<s>谢啦")),
    ("friend", "卡号发我 我转你", ("{card}<s>工行的", "{card}")),
    ("self", "我换手机号了<s>{phone}<s>存一下", ("好的", "收到", "存了")),
    ("friend", "我邮箱{email} 发我一下", ("好的捏", "发了<s>查收")),
    ("friend", "快递寄到{address}", ("好的<s>明天寄", "收到")),
    ("self", "寄到{address}<s>谢啦", ("好嘞", "ok")),
    ("friend", "这是我新号码 {phone}", ("好的捏", "存了")),
    ("self", "我邮箱是{email}", ("收到", "好")),
    ("friend", "帮我记一下 身份证{idno}", ("记下了", "好的捏")),
)
# The other forms people type PII in. Each is scheduled once in every history (history.SPECIAL),
# so the dataset's zero-leak check covers every class the pseudonymiser knows. A friend always
# speaks first: a line of yours that opens a session is context of nothing and never reaches a
# sample, so your PII sits in your answer.
PII_FORMS = (
    ("friend", "我QQ {qq}，微信号 {alias}", ("加你了", "好")),
    ("friend", "你座机多少", ("公司座机 {landline}<s>手机打{phone_dotted}也行",)),
    ("friend", "卡号{card_grouped}<s>农行的", ("转了", "好")),
    ("friend", "我新号码{phone_fullwidth}", ("存了", "好的捏")),
    ("friend", "帮我买票 老身份证{idno15}", ("这个不行吧", "我试试")),
    ("friend", "寄到{estate}", ("好嘞", "收到")),
    ("friend", "你地址发我", ("{building}<s>谢啦",)),
    ("friend", "帮我报个名 https://m.example.com/signup?mobile={mobile}&email={email}", ("填了", "好")),
    ("friend", "你主页链接呢", ("https://h5.example.com/u/{wxid}/home",)),
    ("friend", "登录链接 https://open.example.com/cb#access_token={token}", ("不点", "好")),
    ("friend", "资料呢", ("网盘 https://pan.baidu.com/s/{share} 自己下",)),
)

FAMILY_LINES = (
    "吃饭了吗",
    "注意身体",
    "降温了多穿点",
    "[玫瑰][玫瑰]",
    "周末回家吃饭",
    "早上好",
    "这个视频说得很对",
    "你们都看看",
)
GROUP_LINES = (
    "有人吗",
    "哈哈哈哈哈",
    "[吃瓜]",
    "+1",
    "我也去",
    "谁有空",
    "收到",
    "这个好",
    "？",
    "@所有人 明天别迟到",
    "冲",
    "太真实了",
)
FILEHELPER_NOTES = ("明天记得交电费", "待办：体检预约", "wifi密码 88886666", "买猫粮", "周五前报销")
