"""`wechat-avatar memory profile`: persona facts mined from your own replies with plain rules.

Read from the memory index (your replies, already pseudonymised, with who they answered and when),
written to WORKSPACE/memory/profile.yaml for you to read and edit, and — with memory on — put
into the system prompt as the persona block, before the memory block:

    <system prompt>

    关于你（你自己的说话习惯）：
    口头禅：笑死、好的捏
    常用表情：[捂脸]、[旺柴]
    常提到的地方：绍兴
    常提到的人：小雨
    对朋友的称呼：胡三行→老胡
    活跃时间：21、22、23 点
    <your own notes>

The rules (no model, nothing leaves the machine):
    address       per friend in a private chat: the address term (ADDRESS_TERMS, or their name)
                  you use most often in replies to them, if at least twice
    catchphrases  whole bubbles of yours said at least MIN_COUNT times, stickers aside
    stickers      [bracketed] emoji and sticker placeholders you send most
    active_hours  the hours of day (your time zone) you reply in most
    places, names jieba's part-of-speech tags ns (place) and nr (person) in your replies
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from wechat_avatar.categories import CATEGORIES
from wechat_avatar.config import AvatarConfig
from wechat_avatar.errors import UsageError
from wechat_avatar.memory.index import MemoryIndex
from wechat_avatar.workspace import Workspace

PERSONA_HEADER = "关于你（你自己的说话习惯）："
ADDRESS_TERMS = ("哥", "姐", "兄弟", "宝", "宝贝", "亲爱的", "老板", "大佬", "老婆", "老公", "老师", "妈", "爸",
                 "姐妹", "哥们", "老铁", "同学", "师傅", "亲")  # fmt: skip
MIN_COUNT = 3
COMMON_WORD = 2000  # jieba tags some everyday words nr (明白: 10 875 in its dictionary; 小雨 620): not names
TOP = 8
_MARK = re.compile(r"\[[^\[\]]{1,8}\]")
_PLACEHOLDER_ONLY = re.compile(r"(?:\s*\[[^\[\]]{1,8}\]\s*)+|<[A-Z]+_\d+>")  # a sticker, or a PII pseudonym
_HEAD = """\
# Your persona profile, mined from your own replies by `wechat-avatar memory profile`.
# Edit it freely: with memory on (memory.enabled), chat, serve, eval and training put it into the
# system prompt as the persona block. Delete an entry to leave it out; `notes` is yours to write
# (one fact per line, e.g. "在杭州工作"). `memory profile --refresh` mines it anew (edits are lost).
"""


def mine(index: MemoryIndex, timezone: str, not_stickers: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The facts, from every reply in the index (`not_stickers`: placeholders such as [手机图片])."""
    rows = index.conn.execute("SELECT chat_id, friend, reply, ts_ms FROM exchanges").fetchall()
    if not rows:
        raise UsageError(f"{index.path} holds no replies of yours to learn a profile from",
                         hint="ingest more of your history and run `wechat-avatar memory build` again")  # fmt: skip
    tz = ZoneInfo(timezone)
    bubbles, marks, hours = Counter[str](), Counter[str](), Counter[int]()
    to_friend: dict[str, Counter[str]] = defaultdict(Counter)
    for chat_id, friend, reply, ts_ms in rows:
        hours[datetime.fromtimestamp(ts_ms / 1000, tz).hour] += 1
        marks.update(m for m in _MARK.findall(reply) if m not in not_stickers)
        for bubble in reply.split("<s>"):
            bubble = bubble.strip()
            if bubble and not _PLACEHOLDER_ONLY.fullmatch(bubble):
                bubbles[bubble] += 1
        if not chat_id.endswith("@chatroom"):
            for term in (*ADDRESS_TERMS, friend):
                to_friend[friend][term] += reply.count(term) if term else 0
    places, names = _entities([r[2] for r in rows])
    address = {}
    for friend, terms in sorted(to_friend.items()):
        term, n = max(terms.items(), key=lambda kv: (kv[1], -len(kv[0])))
        if n >= 2:
            address[friend] = term
    return {
        "address": address,
        "catchphrases": [b for b, n in bubbles.most_common(TOP) if n >= MIN_COUNT],
        "stickers": [m for m, n in marks.most_common(TOP) if n >= MIN_COUNT],
        "active_hours": sorted(h for h, _ in hours.most_common(3)),
        "places": places,
        "names": names,
        "notes": "",
    }


def _entities(replies: list[str]) -> tuple[list[str], list[str]]:
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    places, names = Counter[str](), Counter[str]()
    for reply in replies:
        for word, flag in jieba.posseg.cut(_MARK.sub(" ", reply.replace("<s>", " "))):
            if len(word) >= 2 and flag == "ns":
                places[word] += 1
            elif len(word) >= 2 and flag == "nr" and jieba.dt.FREQ.get(word, 0) < COMMON_WORD:
                names[word] += 1
    top = lambda c: [w for w, n in c.most_common(TOP) if n >= MIN_COUNT]  # noqa: E731
    return top(places), top(names)


def write(path: Path, profile: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(profile, allow_unicode=True, sort_keys=False, default_flow_style=False)
    path.write_text(_HEAD + body, encoding="utf-8")


def read(path: Path) -> dict[str, Any]:
    """The (edited) profile; a clear error for a file that is no longer one."""
    hint = f"fix {path}, or delete it and run `wechat-avatar memory profile` again"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{path} is not valid YAML: {str(err).splitlines()[0]}", hint=hint) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a profile (a mapping of facts)", hint=hint)
    return data


def block(profile: dict[str, Any]) -> str:
    """The persona block (see the module's docstring), or "" for a profile with nothing in it."""

    def listed(key: str) -> list[str]:
        value = profile.get(key) or []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    lines = []
    for label, key in (("口头禅", "catchphrases"), ("常用表情", "stickers"), ("常提到的地方", "places"),
                       ("常提到的人", "names")):  # fmt: skip
        if values := listed(key):
            lines.append(f"{label}：{'、'.join(values)}")
    address = profile.get("address") or {}
    if isinstance(address, dict) and address:
        lines.append("对朋友的称呼：" + "；".join(f"{f}→{t}" for f, t in address.items()))
    if hours := listed("active_hours"):
        lines.append(f"活跃时间：{'、'.join(hours)} 点")
    lines += [line for line in str(profile.get("notes") or "").splitlines() if line.strip()]
    return "\n".join([PERSONA_HEADER, *lines]) if lines else ""


def persona_block(workspace: Workspace, cfg: AvatarConfig) -> str:
    """The block where memory is on and a profile exists; "" otherwise (the prompt of old)."""
    path = workspace.memory_profile
    return block(read(path)) if cfg.memory.enabled and path.is_file() else ""


def profile(workspace: Workspace, cfg: AvatarConfig, refresh: bool = False) -> tuple[Path, bool]:
    """Mine and write the profile unless one is there (the user's edits win); (its path, whether mined now)."""
    path = workspace.memory_profile
    if path.is_file() and not refresh:
        read(path)  # still a profile
        return path, False
    if not workspace.memory_index.is_file():
        raise UsageError(f"no memory index at {workspace.memory_index} to learn a profile from",
                         hint=f"run `wechat-avatar memory build --workspace {workspace}` first")  # fmt: skip
    index = MemoryIndex(workspace.memory_index)
    try:
        write(path, mine(index, cfg.ingest.timezone, _not_stickers(cfg)))
    finally:
        index.close()
    return path, True


def with_persona(system: str, persona: str) -> str:
    """The system prompt with the persona block after it (the memory block follows both)."""
    return f"{system}\n\n{persona}" if persona else system


def _not_stickers(cfg: AvatarConfig) -> frozenset[str]:
    """Every category's placeholder but the sticker's, as rendered with the user's overrides."""
    placeholders = {name: c.placeholder for name, c in CATEGORIES.items()} | dict(cfg.render.placeholders or {})
    return frozenset(p for name, p in placeholders.items() if name != "sticker")
