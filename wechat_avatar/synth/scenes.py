"""Conversation sessions: who says what, in which chat, with which message kinds.

Each session builder is a generator of `Draft`s. It is consumed lazily by `History`, which
stamps ids and times as each draft is yielded, so a builder can look at `last_text` to
quote the message just before it. Time between drafts is in `Draft.delay_ms`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from wechat_avatar.synth import payloads as pl
from wechat_avatar.synth import phrases as ph
from wechat_avatar.synth.facts import Fact
from wechat_avatar.synth.kinds import media_table
from wechat_avatar.synth.persona import Cast, Group, Person
from wechat_avatar.synth.pii import CANARIES, PII_SLOTS

_SLOT = re.compile(r"\{(\w+)\}")
GROUP_TOPIC = {"game": "game", "family": "chat", "dorm": "meme", "work": "work", "weekend": "weekend", "food": "food"}
PII_SESSION_RATE = 0.025
PROVOKE_RATE = 0.03  # per private session; the partner picks fights far more often


@dataclass(slots=True)
class Draft:
    talker: str
    sender: str  # wxid; "" for lines WeChat itself writes
    kind: str
    content: str | bytes
    delay_ms: int = 0
    img_path: str | None = None
    pii: tuple[str, ...] = ()


class Scenes:
    def __init__(self, cast: Cast, rng: random.Random) -> None:
        self.cast, self.rng = cast, rng
        self.me = cast.me.wxid
        self.now_s = 0  # set by History before each draft; used inside XML timestamps
        self.last_text: dict[str, tuple[int, str, str, int]] = {}  # talker -> (svrid, sender, text, s)
        self.started: set[str] = set()
        self._media = {(t, g): media_table(t, g) for t in ph.TOPICS for g in (False, True)}
        self._friend_cum = list(_cumulate(p.weight for p in cast.friends))
        self._stickers = [pl.hex32(rng) for _ in range(40)]
        self._favourites = self._stickers[:5]  # the self persona's go-to stickers, Zipf-ish

    # -- text ---------------------------------------------------------------------------------
    def fill(self, template: str) -> tuple[str, tuple[str, ...]]:
        """Replace {slots}; PII slots get fresh values that are returned for the manifest."""
        if "{" not in template:
            return template, ()
        planted: list[str] = []

        def value(m: re.Match[str]) -> str:
            name = m[1]
            if name in PII_SLOTS:
                planted.append(PII_SLOTS[name](self.rng))
                return planted[-1]
            return self.rng.choice(ph.SLOTS[name])

        return _SLOT.sub(value, template), tuple(planted)

    def bubbles(self, talker: str, sender: str, template: str, first_delay: int) -> Iterator[Draft]:
        """One burst: each `<s>`-separated bubble becomes its own message a few seconds apart."""
        text, planted = self.fill(template)
        delay = first_delay
        for part in text.split("<s>"):
            yield Draft(talker, sender, "text", part, delay, pii=tuple(p for p in planted if p in part))
            delay = self.rng.randint(800, 7000)

    def reply_delay(self) -> int:
        return min(int(self.rng.lognormvariate(9.6, 1.3)), 1_200_000)

    def display(self, wxid: str, group: Group | None = None) -> str:
        if group is not None and wxid in group.nicks:
            return group.nicks[wxid]
        if wxid == self.me:
            return self.cast.me.nickname
        person = self.cast.people.get(wxid)
        return person.display if person else wxid

    # -- media --------------------------------------------------------------------------------
    def media(
        self, talker: str, sender: str, kind: str, group: Group | None = None, delay: int | None = None
    ) -> Iterator[Draft]:
        """One non-text message (plus the system lines it triggers, e.g. a red packet taken)."""
        rng, mine = self.rng, sender == self.me
        delay = self.reply_delay() if delay is None else delay
        if group is None:
            other = talker if mine else self.me
        else:
            other = rng.choice([m for m in group.members if m != sender])
        path = None
        if kind in ("image", "voice", "video", "sticker"):
            content, path = self._file_media(kind, sender, mine)
        elif kind == "card":
            friend = rng.choice(self.cast.friends)
            content = pl.card(friend.wxid, friend.nickname, friend.alias, rng)
        elif kind == "location":
            content = pl.location(rng)
        elif kind == "record":
            lines = [
                (self.display(rng.choice(self.cast.friends).wxid), rng.choice(ph.GROUP_LINES))
                for _ in range(rng.randint(2, 4))
            ]
            content = pl.chat_record(rng, sender, lines)
        elif kind == "transfer":
            yield from self._transfer(talker, sender, other, delay)
            return
        elif kind == "redpacket":
            yield from self._red_packet(talker, sender, delay, group)
            return
        elif kind == "pat":
            content = pl.pat(
                rng, sender, other, self.display(sender, group), self.display(other, group), talker, self.now_s
            )
        elif kind == "announcement":
            content = pl.announcement(rng, sender, talker, self.now_s)
        elif kind == "voip":
            content = pl.voip(rng)
        elif kind == "unknown":
            content = pl.unknown(rng)
        elif kind == "bad_utf8":
            content = pl.INVALID_UTF8
        else:  # link, bili, file, mini, music, channels, article, malformed: all (rng, frm)
            content = getattr(pl, {"mini": "mini_program"}.get(kind, kind))(rng, sender)
        yield Draft(talker, sender, kind, content, delay, path)

    def _file_media(self, kind: str, sender: str, mine: bool) -> tuple[str, str]:
        rng = self.rng
        if kind == "image":
            return pl.image(rng)
        if kind == "voice":
            return pl.voice(rng, sender)
        if kind == "video":
            return pl.video(rng, sender)
        if mine and rng.random() < 0.85:  # the persona's favourites, the first one most of all
            md5 = rng.choices(self._favourites, cum_weights=_ZIPF)[0]
        else:
            md5 = rng.choice(self._stickers)
        return pl.sticker(rng, sender, md5, mine)

    def _transfer(self, talker: str, payer: str, receiver: str, delay: int) -> Iterator[Draft]:
        yield Draft(talker, payer, "transfer", pl.transfer(self.rng, payer, receiver, self.now_s, 1), delay)
        if self.rng.random() < 0.8:  # the receiver accepts: a second 419430449 row, paysubtype 3
            yield Draft(
                talker, receiver, "transfer", pl.transfer(self.rng, payer, receiver, self.now_s, 3), self.reply_delay()
            )

    def _red_packet(self, talker: str, sender: str, delay: int, group: Group | None) -> Iterator[Draft]:
        content, sendid = pl.red_packet(self.rng, sender)
        yield Draft(talker, sender, "redpacket", content, delay)
        takers = [talker] if group is None else self.rng.sample(group.members[1:], 3)
        for taker in takers:
            if sender == self.me and taker != self.me:
                line = pl.hongbao_taken(self.display(taker, group), sendid, mine=True)
            elif sender != self.me and self.rng.random() < 0.6:
                line = pl.hongbao_taken(self.display(sender, group), sendid, mine=False)
            else:
                continue
            yield Draft(talker, "", "system", line, self.rng.randint(3000, 60000))

    # -- turns --------------------------------------------------------------------------------
    def turn(
        self, talker: str, who: Person, line: str, topic: str, group: Group | None = None, force: str | None = None
    ) -> Iterator[Draft]:
        """Someone (friend or self) says `line`; media may replace it, or come just before or after it
        ("你看这个" + a link), so a line and the answer to it stay together."""
        rng = self.rng
        kind = force
        if kind is None and rng.random() < (0.15 if who.wxid == self.me else 0.45):
            kinds, cum = self._media[(topic, group is not None)]
            kind = rng.choices(kinds, cum_weights=cum)[0]
        if kind is not None and (not line or rng.random() < 0.4):
            yield from self.media(talker, who.wxid, kind, group)
            return
        after = kind is not None and rng.random() < 0.5
        if kind is not None and not after:
            yield from self.media(talker, who.wxid, kind, group)
        yield from self.say(talker, who, line, group)
        if after:
            yield from self.media(talker, who.wxid, kind, group, delay=rng.randint(1000, 20_000))

    def say(self, talker: str, who: Person, line: str, group: Group | None) -> Iterator[Draft]:
        """The words of a turn: usually bubbles; now and then a quote, or a message taken back."""
        rng, mine = self.rng, who.wxid == self.me
        if rng.random() < 0.006:
            name = "你" if mine else f'"{self.display(who.wxid, group)}" '
            kind = "revoke_old" if rng.random() < 0.3 else "revoke"
            yield Draft(talker, "", kind, f"{name}撤回了一条消息", self.reply_delay())
            return
        if not mine and rng.random() < 0.25:
            line += rng.choice((who.laugh, who.emoji))
        if rng.random() < 0.02 and talker in self.last_text and "<s>" not in line:
            yield self.quote(talker, who.wxid, self.fill(line)[0], group)
            return
        yield from self.bubbles(talker, who.wxid, line, self.reply_delay())

    def reply(
        self, talker: str, exchange: ph.Exchange | None, topic: str, group: Group | None = None
    ) -> Iterator[Draft]:
        """The self persona answers: a multi-bubble burst with its habits (catchphrase, sticker)."""
        rng = self.rng
        answers = exchange.answers if exchange and rng.random() < 0.75 else ph.TOPICS[topic].generic
        template = rng.choice(answers)
        if rng.random() < 0.04 and talker in self.last_text:
            first, _, template = template.partition("<s>")
            yield self.quote(talker, self.me, self.fill(first)[0], group)
        if template:
            yield from self.turn(talker, self.cast.me, template, topic, group)
        habit = rng.random()
        if habit < 0.18:
            habit_text = rng.choice(ph.CATCHPHRASES + ph.SELF_EMOJI)
            yield Draft(talker, self.me, "text", habit_text, rng.randint(800, 5000))
        elif habit < 0.28:
            yield from self.media(talker, self.me, "sticker", group, delay=rng.randint(800, 5000))

    def quote(self, talker: str, sender: str, title: str, group: Group | None) -> Draft:
        svrid, ref_from, ref_text, ref_s = self.last_text[talker]
        content = pl.quote(title, sender, 1, svrid, ref_from, self.display(ref_from, group), ref_text, ref_s)
        return Draft(talker, sender, "quote", content, self.reply_delay())

    # -- sessions -----------------------------------------------------------------------------
    def pick_friend(self) -> Person:
        return self.rng.choices(self.cast.friends, cum_weights=self._friend_cum)[0]

    def topic_for(self, person: Person) -> str:
        return self.rng.choices(tuple(ph.TOPICS), weights=person.topics)[0]

    def private(self, friend: Person, force: str | None = None) -> Iterator[Draft]:
        rng, talker = self.rng, friend.wxid
        if friend.is_new and talker not in self.started:
            yield from self.greeting(friend)
        self.started.add(talker)
        topic = self.topic_for(friend)
        if force:  # a guaranteed kind (see History): sent by either side, then chat on
            who = self.cast.me if rng.random() < 0.5 else friend
            yield from self.turn(talker, who, "", topic, force=force)
        r = rng.random()
        if r < (0.25 if friend.partner else PROVOKE_RATE):
            yield from self.provoke(talker, friend)
        elif r < PROVOKE_RATE + PII_SESSION_RATE:
            yield from self.pii_exchange(talker, friend)
        elif r < 0.3:
            opener = rng.choice(ph.SELF_OPENERS)
            yield from self.bubbles(talker, self.me, opener.said, 0)
            yield from self.turn(talker, friend, rng.choice(opener.answers), topic)
            yield from self.reply(talker, None, topic)
        else:
            exchange = rng.choice(ph.TOPICS[topic].exchanges)
            yield from self.turn(talker, friend, exchange.said, topic)
            yield from self.reply(talker, exchange, topic)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            yield from self.turn(talker, friend, rng.choice(ph.TOPICS[topic].follow), topic)
            yield from self.reply(talker, None, topic)

    def fact(self, friend: Person, fact: Fact) -> Iterator[Draft]:
        """A friend's line that brings up one of the persona's facts, and an answer that states it."""
        rng, talker = self.rng, friend.wxid
        exchange = rng.choice(fact.mentions)
        yield from self.bubbles(talker, friend.wxid, exchange.said, 0)
        yield from self.bubbles(talker, self.me, rng.choice(exchange.answers), self.reply_delay())
        if rng.random() < 0.5:
            topic = self.topic_for(friend)
            yield from self.turn(talker, friend, rng.choice(ph.TOPICS[topic].follow), topic)
            yield from self.reply(talker, None, topic)

    def greeting(self, friend: Person) -> Iterator[Draft]:
        """A friend added during the history: request, hello, and WeChat's system lines."""
        content = pl.friend_request(self.rng, friend.wxid, friend.nickname, friend.pinyin)
        yield Draft("fmessage", friend.wxid, "friend_request", content, 0)
        hello = f"我是{friend.nickname}"
        yield Draft(friend.wxid, friend.wxid, "text", hello, self.rng.randint(60_000, 600_000))
        yield Draft(friend.wxid, "", "system", "以上是打招呼的内容", 1000)
        yield Draft(friend.wxid, "", "system", f"你已添加了{friend.display}，现在可以开始聊天了。", 1000)

    def provoke(self, talker: str, friend: Person) -> Iterator[Draft]:
        """A provocation, and (mostly) a rude answer: the behaviour RLHF is meant to fix."""
        rng = self.rng
        line = rng.choice(ph.PARTNER_FIGHTS if friend.partner else ph.PROVOCATIONS)
        yield from self.bubbles(talker, friend.wxid, line, 0)
        yield from self.bubbles(
            talker, self.me, rng.choice(ph.RUDE if rng.random() < 0.65 else ph.MILD), self.reply_delay()
        )
        yield from self.bubbles(talker, friend.wxid, rng.choice(ph.AFTER_RUDE), self.reply_delay())

    def pii_exchange(
        self, talker: str, friend: Person, speaker: str = "", form: tuple[str, str, tuple[str, ...]] | None = None
    ) -> Iterator[Draft]:
        """Someone shares a phone / ID / card / e-mail / address (`speaker` forces self or friend,
        `form` one exchange)."""
        choices = [x for x in ph.PII_EXCHANGES if x[0] == speaker] if speaker else ph.PII_EXCHANGES
        speaker, line, answers = form or self.rng.choice(choices)
        first, second = (self.me, friend.wxid) if speaker == "self" else (friend.wxid, self.me)
        yield from self.bubbles(talker, first, line, 0)
        yield from self.bubbles(talker, second, self.rng.choice(answers), self.reply_delay())

    def group(self, group: Group, force: str | None = None) -> Iterator[Draft]:
        rng, talker = self.rng, group.wxid
        if talker not in self.started:
            yield from self.joined(group)
        self.started.add(talker)
        topic = GROUP_TOPIC[group.theme]
        others = [self.cast.people[w] for w in group.members[1:]]
        if force or rng.random() < 0.01:  # an announcement now and then, from the owner
            yield from self.media(talker, group.owner, force or "announcement", group)
        for _ in range(rng.randint(2, 9)):
            exchange = rng.choice(ph.TOPICS[topic].exchanges) if rng.random() < 0.55 else None
            lines = ph.FAMILY_LINES if group.theme == "family" else ph.GROUP_LINES
            line = exchange.said if exchange else rng.choice(lines)
            yield from self.turn(talker, rng.choice(others), line, topic, group)
            if rng.random() < (0.5 if exchange else 0.15):
                yield from self.reply(talker, exchange, topic, group)

    def joined(self, group: Group) -> Iterator[Draft]:
        names = "、".join(self.display(w) for w in group.members[1:4])
        if group.invited_by:
            line = f'"{self.display(group.invited_by)}"邀请你加入了群聊，群聊参与人还有：{names}'
        else:
            line = "你邀请" + "、".join(f'"{self.display(w)}"' for w in group.members[1:4]) + "加入了群聊"
        yield Draft(group.wxid, "", "system", line, 0)
        stranger = group.members[-1]
        yield Draft(
            group.wxid,
            "",
            "system",
            f'"{self.display(group.members[1])}"邀请"{self.display(stranger)}"加入了群聊',
            30_000,
        )

    def renamed(self, group: Group) -> Iterator[Draft]:
        """A member renames the group: a plain system line (10000), then the chat goes on."""
        who = self.display(self.rng.choice(group.members[1:]), group)
        yield Draft(group.wxid, "", "system", f'"{who}"修改群名为“{group.name}”', 0)
        yield from self.group(group)

    def official(self) -> Iterator[Draft]:
        account = self.rng.choice(self.cast.officials)
        for i in range(self.rng.randint(1, 3)):
            content = pl.article(self.rng, account.wxid, account.theme)
            yield Draft(account.wxid, account.wxid, "article", content, 0 if i == 0 else 200)

    def filehelper(self, force_text: str = "") -> Iterator[Draft]:
        rng = self.rng
        if force_text or rng.random() < 0.5:
            yield Draft("filehelper", self.me, "text", force_text or rng.choice(ph.FILEHELPER_NOTES), 0)
        else:
            yield from self.media("filehelper", self.me, rng.choice(("image", "file", "link", "video")))

    def canary(self, which: int) -> Iterator[Draft]:
        """The fixed canary strings: one noted by self, one said by a friend."""
        if which == 0:
            text = f"备忘：{CANARIES[0]} 别外传"
            yield Draft("filehelper", self.me, "text", text, 0, pii=(CANARIES[0],))
            return
        friend = self.cast.friends[0]
        yield Draft(friend.wxid, friend.wxid, "text", f"暗号是{CANARIES[1]}", 0, pii=(CANARIES[1],))
        yield from self.reply(friend.wxid, None, "chat")

    def own_contact(self) -> Iterator[Draft]:
        """Self gives out its own phone and e-mail (the same values as userinfo ids 6 and 5)."""
        friend = self.cast.friends[1]
        yield Draft(friend.wxid, friend.wxid, "text", "你电话和邮箱发我一下", 0)
        phone, email = self.cast.phone, self.cast.email
        yield Draft(friend.wxid, self.me, "text", phone, self.reply_delay(), pii=(phone,))
        yield Draft(friend.wxid, self.me, "text", email, 2000, pii=(email,))


_ZIPF = (1.0, 1.5, 1.83, 2.08, 2.28)  # cumulative 1/rank: the favourite sticker wins half the time


def _cumulate(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total
