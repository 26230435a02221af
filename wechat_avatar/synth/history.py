"""The message stream: sessions -> format-independent `Event`s with ids, times and bookkeeping.

`History.events()` is a generator, so even a million-message export only ever holds one
session in memory. Rare kinds are *scheduled* (spread evenly over the stream) so that every
Android type code occurs even in a small export; everything else is drawn at its weight.
Every export format (synth/android.py, pc3.py, pc4.py, exports.py) maps the same events, so
they all hold the same history.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

from wechat_avatar.synth.facts import FactPlan, probes
from wechat_avatar.synth.kinds import ANDROID_TYPE, GROUP_ONLY, ODD_KINDS
from wechat_avatar.synth.payloads import friend_request
from wechat_avatar.synth.persona import Cast, Person
from wechat_avatar.synth.phrases import PII_FORMS
from wechat_avatar.synth.scenes import Draft, Scenes
from wechat_avatar.synth.tables import rcontact_rows
from wechat_avatar.synth.timeline import Clock

MEAN_SESSION_LEN = 7.5  # measured; turns the message count into a session rate for the clock
SHOW_TIMER_GAP_MS = 180_000  # WeChat prints a time divider after three quiet minutes
_SVRID_MOD = 1 << 63
_SVRID_MULT = 0x5851F42D4C957F2D  # odd, so msgId -> msgSvrId is a bijection: unique, random-looking
PII_FORM = "pii_form_"  # + an index into phrases.PII_FORMS: each form is scheduled once
_PII_FORMS = tuple(f"{PII_FORM}{i}" for i, _ in enumerate(PII_FORMS))
FACT_RATE = 0.07  # of all sessions: a friend brings up one of the persona's facts (synth/facts.py)
SPECIAL = ("canary_self", "canary_friend", "own_contact", "pii_friend", *_PII_FORMS)


def schedule(rng: random.Random, n: int) -> list[tuple[int, str]]:
    """(message index, kind) pairs: every kind at least once, odd rows once per 100k."""
    kinds = [k for k in ANDROID_TYPE if k != "text"] + list(SPECIAL)
    kinds += [k for k in ODD_KINDS for _ in range(n // 100_000)]
    rng.shuffle(kinds)
    step = n * 0.9 / (len(kinds) + 1)
    return [(int(n * 0.02 + step * i), kind) for i, kind in enumerate(kinds)]


class Event(NamedTuple):
    """One message of the history as WeChat's servers know it, before any client stores it."""

    local_id: int  # 1..n in stream order (Android msgId)
    server_id: int  # msgSvrId / MsgSvrID / server_id: the same in every client
    kind: str  # a key of kinds.ANDROID_TYPE
    talker: str  # the chat: contact wxid or …@chatroom
    sender: str  # wxid; "" for lines WeChat writes itself
    is_send: bool
    created_ms: int
    content: str | bytes  # no group prefix; voice and sticker rows in Android's own form
    img_path: str | None
    show_timer: bool  # WeChat shows a time divider before it
    talker_id: int  # the talker's rcontact rowid
    seq: int  # Android msgSeq
    member_count: int  # group size; 0 in private chats


class History:
    """Generates exactly `n` events, oldest first; with `stop`, only the first `stop` of them (the
    same history exported earlier: a later export of it holds these events and more)."""

    def __init__(self, cast: Cast, n: int, rng: random.Random, stop: int | None = None) -> None:
        self.cast, self.n, self.rng = cast, n, rng
        self.stop = n if stop is None else min(n, stop)
        self.scenes = Scenes(cast, rng)
        self.clock = Clock(rng, n / MEAN_SESSION_LEN)
        self._schedule = schedule(rng, n)
        self._next = 0
        self._svrid_salt = rng.getrandbits(62)
        self.facts = FactPlan(random.Random(rng.getrandbits(32)))  # its own stream: probes never shift the rest
        # talkerId = the talker's rcontact rowid (rows are inserted in this order)
        self._talker_id = {row[0]: i + 1 for i, row in enumerate(rcontact_rows(cast))}
        self._groups = {g.wxid: g for g in cast.groups}
        self._last_ms: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        # what the manifest reports
        self.count = 0
        self.type_counts: Counter[int] = Counter()
        self.kind_counts: Counter[str] = Counter()
        self.planted: dict[str, None] = {}  # ordered set
        self.odd: dict[str, list[int]] = {k: [] for k in ODD_KINDS}
        self.first_ms = self.last_ms = 0

    @property
    def talkers(self) -> set[str]:
        return set(self._last_ms)

    def events(self) -> Iterator[Event]:
        while self.count < self.stop:
            self.scenes.now_s = self.clock.next_session() // 1000
            for draft in self._session():
                yield self._event(draft)
                if self.count >= self.stop:
                    return

    # -- choosing the session -----------------------------------------------------------------
    def _session(self) -> Iterator[Draft]:
        if self._next < len(self._schedule) and self._schedule[self._next][0] <= self.count:
            self._next += 1
            return self._forced(self._schedule[self._next - 1][1])
        scenes, r = self.scenes, self.rng.random()
        if r < FACT_RATE:
            fact = self.facts.next()
            return scenes.fact(self._fact_friend(fact.not_to_partner), fact)
        if r < 0.6:
            return scenes.private(scenes.pick_friend())
        if r < 0.93:
            return scenes.group(self.rng.choice(self.cast.groups))
        if r < 0.97:
            return scenes.official()
        return scenes.filehelper()

    def _fact_friend(self, not_partner: bool) -> Person:
        while (friend := self.scenes.pick_friend()).partner and not_partner:
            pass
        return friend

    def probes(self) -> list[dict[str, object]]:
        """The held-out questions about the facts, after the last message (call once the events are spent)."""
        return probes(self.cast, random.Random(f"probes:{self._svrid_salt}"), self.last_ms)

    def _forced(self, kind: str) -> Iterator[Draft]:
        scenes, rng = self.scenes, self.rng
        if kind == "canary_self":
            return scenes.canary(0)
        if kind == "canary_friend":
            return scenes.canary(1)
        if kind == "own_contact":
            return scenes.own_contact()
        if kind == "pii_friend":
            friend = scenes.pick_friend()
            return scenes.pii_exchange(friend.wxid, friend, speaker="friend")
        if kind.startswith(PII_FORM):
            friend = scenes.pick_friend()
            return scenes.pii_exchange(friend.wxid, friend, form=PII_FORMS[int(kind.removeprefix(PII_FORM))])
        if kind == "article":
            return scenes.official()
        if kind == "friend_request":  # a stranger asks; never accepted, so only the fmessage row
            who = rng.choice(self.cast.strangers)
            content = friend_request(rng, who.wxid, who.nickname, who.pinyin)
            return iter([Draft("fmessage", who.wxid, kind, content, 0)])
        if kind == "system":
            return scenes.renamed(rng.choice(self.cast.groups))
        if kind in GROUP_ONLY:
            return scenes.group(rng.choice(self.cast.groups), force=kind)
        if kind in ("revoke", "revoke_old", "quote"):
            return self._revoke_or_quote(kind)
        return scenes.private(scenes.pick_friend(), force=kind)

    def _revoke_or_quote(self, kind: str) -> Iterator[Draft]:
        scenes, friend = self.scenes, self.scenes.pick_friend()
        yield Draft(friend.wxid, friend.wxid, "text", self.rng.choice(("在吗", "你看群里", "明天见")), 0)
        if kind == "quote":
            yield scenes.quote(friend.wxid, scenes.me, self.rng.choice(("好的捏", "笑死", "收到")), None)
        else:
            yield Draft(friend.wxid, "", kind, f'"{friend.display}" 撤回了一条消息', 5000)

    # -- stamping a draft into an event -------------------------------------------------------
    def _event(self, d: Draft) -> Event:
        self.count += 1
        msg_id, talker = self.count, d.talker
        created = self.clock.advance(d.delay_ms)
        self.scenes.now_s = created // 1000
        svrid = (msg_id * _SVRID_MULT + self._svrid_salt) % _SVRID_MOD
        group = self._groups.get(talker)
        previous = self._last_ms.get(talker, 0)
        self._last_ms[talker] = created
        seq = self._seq.get(talker, 700_000_000 + msg_id * 3) + self.rng.randint(1, 3)
        self._seq[talker] = seq
        self._note(d, msg_id, svrid, created)
        return Event(
            local_id=msg_id,
            server_id=svrid,
            kind=d.kind,
            talker=talker,
            sender=d.sender,
            is_send=d.sender == self.cast.me.wxid,
            created_ms=created,
            content=d.content,
            img_path=d.img_path,
            show_timer=created - previous > SHOW_TIMER_GAP_MS,
            talker_id=self._talker_id.get(talker, 0),
            seq=seq,
            member_count=len(group.members) if group is not None else 0,
        )

    def _note(self, d: Draft, msg_id: int, svrid: int, created: int) -> None:
        """Bookkeeping for the manifest and for later quotes."""
        self.type_counts[ANDROID_TYPE[d.kind]] += 1
        self.kind_counts[d.kind] += 1
        if d.kind == "text":
            self.scenes.last_text[d.talker] = (svrid, d.sender, d.content, created // 1000)
        elif d.kind in self.odd:
            self.odd[d.kind].append(msg_id)
        for value in d.pii:
            self.planted[value] = None
        self.first_ms = self.first_ms or created
        self.last_ms = created
