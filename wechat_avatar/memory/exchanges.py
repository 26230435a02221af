"""One chat's messages -> your exchanges (a reply of yours and what it answered) and its sessions.

Messages are chosen, named and pseudonymised as the dataset does (dataset/build.py's rules,
dataset/pii.py's pseudonymiser, dataset/window.py's sessions and turns), so a memory reads like
the context of a training sample and its session is the dataset's session:

    胡三行 "你是哪里人来着"   +  you "绍兴的", "黄酒那个绍兴"
    -> Exchange(id=<your first message's id>, chat_id="wxid_hu", friend="胡三行",
                said="你是哪里人来着", reply="绍兴的<s>黄酒那个绍兴", ts_ms=…)
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import NamedTuple

from wechat_avatar.config import DatasetConfig
from wechat_avatar.dataset.build import chat_reason, message_reason
from wechat_avatar.dataset.clean import BlockedWords
from wechat_avatar.dataset.names import Names
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.dataset.window import Line, runs, sessions
from wechat_avatar.store import DatasetRow

SAID_LINES = 3  # what a memory keeps of the friend's turn: its last few messages


class Exchange(NamedTuple):
    id: int  # chat.db id of your reply's first message
    chat_id: str
    friend: str  # who you answered (pseudonymised display name)
    said: str  # their messages, joined with " / "
    reply: str  # your bubbles, joined with <s>
    ts_ms: int  # when you replied


class Session(NamedTuple):
    chat_id: str
    start_ms: int
    key: str  # the dataset's session id in meta.jsonl: md5("chat_id:start_ms")[:12], as samples.py writes it


class ChatMemory(NamedTuple):
    exchanges: list[Exchange]
    sessions: list[Session]
    skipped: int  # messages the dataset would not read either (placeholders that failed, empty, …)


class Cutter:
    """Turns chats into exchanges with the dataset's rules and one pseudonymiser across all chats."""

    def __init__(self, names: Names, cfg: DatasetConfig, pseudo: Pseudonymiser) -> None:
        self.names, self.cfg, self.pseudo = names, cfg, pseudo
        self.blocked = BlockedWords(cfg.blocked_words)
        self.gap_ms = int(cfg.session_gap_hours * 3_600_000)

    def chat(self, chat_id: str, rows: list[DatasetRow]) -> ChatMemory | None:
        """None where the dataset leaves the whole chat out (official accounts, file helper, excluded)."""
        kind, chat_name, contact_kind = self.names.chat(chat_id)
        chat_name = self.pseudo(chat_name)
        if chat_reason(self.cfg, chat_id, chat_name, kind, contact_kind):
            return None
        lines, skipped = self._lines(chat_id, rows)
        exchanges: list[Exchange] = []
        found: list[Session] = []
        for session in sessions(lines, self.gap_ms):
            start = session[0].ts_ms
            key = hashlib.md5(f"{chat_id}:{start}".encode()).hexdigest()[:12]
            found.append(Session(chat_id, start, key))
            exchanges += _exchanges(chat_id, chat_name if kind == "private" else "", session)
        return ChatMemory(exchanges, found, skipped)

    def _lines(self, chat_id: str, rows: list[DatasetRow]) -> tuple[list[Line], int]:
        lines, skipped = [], 0
        speakers: dict[str, str] = {}
        for msg_id, _, sender, is_self, ts_ms, category, status, text in rows:
            if message_reason(status, category, text):
                skipped += 1
                continue
            text = self.blocked.mask(self.pseudo(text)) if len(text) > 5 else self.blocked.mask(text)
            if (name := speakers.get(sender)) is None:
                name = speakers[sender] = self.pseudo(self.names.sender(chat_id, sender, bool(is_self)) or "系统")
            lines.append(Line(msg_id, bool(is_self), name, text, category, ts_ms))
        return lines, skipped


def _exchanges(chat_id: str, friend: str, session: list[Line]) -> Iterator[Exchange]:
    """Each run of yours that follows someone else's, with the last few lines it answered."""
    turns = runs(session)
    for before, reply in itertools.pairwise(turns):
        if not reply[0].is_self or before[0].is_self:
            continue
        heard = before[-SAID_LINES:]
        said = " / ".join(line.text.replace("\n", " ") for line in heard)
        who = friend or heard[-1].name  # in a group: whoever spoke last
        yield Exchange(reply[0].id, chat_id, who, said, "<s>".join(line.text for line in reply), reply[0].ts_ms)
