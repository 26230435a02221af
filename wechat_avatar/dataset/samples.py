"""Stage 2 of a dataset build: one chat's lines -> sessions, windows, cleaning, the files.

Owns everything that must run in order over the whole dataset: conversation ids, the
filler de-duplication, the reservoirs for the report, and the output files with their
hashes. Stage 1 (build.py) reads the store and pseudonymises; for big stores the two run
in separate processes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from wechat_avatar.config import DatasetConfig
from wechat_avatar.dataset import formats
from wechat_avatar.dataset.clean import placeholder_only
from wechat_avatar.dataset.stats import DatasetStats
from wechat_avatar.dataset.window import Candidate, Line, sessions, windows
from wechat_avatar.workspace import split_name

TOKEN_SAMPLE = 2000  # enough for a histogram; counting costs ~0.25 ms a sample
EXAMPLES = 10


class ChatLines(NamedTuple):
    """What stage 1 hands over for one chat (picklable)."""

    chat_id: str
    chat_name: str  # already pseudonymised
    is_group: bool
    lines: list[Line]
    profane: set[int]  # ids of your messages with rude words
    blocked: set[int]  # ids of messages that had blocked words (now masked)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as columns: a list of a million small tuples pickles 4x slower than six lists
        columns = tuple(zip(*self.lines, strict=True)) if self.lines else ((),) * len(Line._fields)
        return _chat_lines, (self.chat_id, self.chat_name, self.is_group, columns, self.profane, self.blocked)


def _chat_lines(chat_id: str, name: str, group: bool, columns: tuple[Any, ...], *flags: set[int]) -> ChatLines:
    return ChatLines(chat_id, name, group, list(map(Line, *columns)), *flags)


@dataclass
class Written:
    """What stage 2 hands back: the sample-side statistics and the files it wrote."""

    stats: DatasetStats
    token_texts: list[list[dict[str, str]]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


def bucket_of(session_key: str) -> float:
    """A session's place in [0, 1): those below test_ratio are held out."""
    return int.from_bytes(hashlib.md5(session_key.encode()).digest()[:4], "big") / 2**32


def split_of(session_key: str, test_ratio: float) -> str:
    """Deterministic per session, so a conversation never straddles train and test."""
    return "test" if bucket_of(session_key) < test_ratio else "train"


@dataclass
class Holdout:
    """The written training session that is closest to the test split (lowest bucket), by conversation ids:
    held out after all when no session fell under test_ratio, so that eval has something to score."""

    bucket: float
    key: str
    first: int
    last: int


class SampleWriter:
    def __init__(self, cfg: DatasetConfig, self_name: str, out: Path) -> None:
        self.dcfg, self.self_name, self.out = cfg, self_name, out
        self.system = cfg.system_prompt.format(name=self_name)
        self.system_json = formats.encode(self.system)
        self.name_prefix_json = formats.encode(f"{self_name}:")[:-1]
        self.fillers = set(cfg.filler_replies)
        self.seen_fillers: set[tuple[str, str]] = set()
        self.stats = DatasetStats()
        self.conversation_id = 0
        self.rng = random.Random(0)  # reservoir samples for token lengths and examples
        self.token_texts: list[list[dict[str, str]]] = []
        self.example_pool: list[dict[str, Any]] = []
        self.files: dict[tuple[str, str], IO[bytes]] = {}
        self.hashes: dict[tuple[str, str], Any] = {}
        self.line_makers: dict[str, Callable[[list[tuple[str, str]]], str]] = {
            "firefly": lambda turns: formats.firefly_line(turns, self.conversation_id, self.name_prefix_json),
            "messages": lambda turns: formats.messages_line(turns, self.system_json),
            "sharegpt": lambda turns: formats.sharegpt_line(turns, self.system_json),
        }
        self.buffers: dict[tuple[str, str], list[str]] = {}
        self.outputs: dict[str, list[tuple[Callable[[list[tuple[str, str]]], str], list[str]]]] = {}
        self.session_info: dict[str, tuple[str, str, str]] = {}  # per chat: split, hash, chat JSON
        self.turn_text: dict[tuple[int, int], tuple[str, str]] = {}  # per chat: a turn's (text, JSON)
        self.written_sessions = 0  # sessions with at least one written sample
        self.holdout: Holdout | None = None

    def chat(self, chat: ChatLines) -> None:
        """Every sample of one chat, and a reason for each of its lines that ends in none."""
        st = self.stats
        self.turn_text.clear()
        self.session_info.clear()
        gap_ms = int(self.dcfg.session_gap_hours * 3_600_000)
        candidates: list[Candidate] = []
        reasons: dict[int, str] = {}
        for session in sessions(chat.lines, gap_ms):
            st.sessions += 1
            key = f"{chat.chat_id}:{session[0].ts_ms}"
            candidates += [Candidate(chat.chat_id, chat.chat_name, chat.is_group, key, turns, reply)
                           for turns, reply in windows(session, self.dcfg.context_window)]  # fmt: skip
            _unused_reasons(session, reasons)
        self._clean(candidates, chat.blocked)
        used: set[int] = set()
        for c in candidates:
            if c.dropped:
                st.samples_dropped[c.dropped] += 1
                reasons.update(dict.fromkeys(c.message_ids, f"sample_dropped:{c.dropped}"))
            else:
                ids = c.message_ids
                profane = bool(chat.profane) and any(line.id in chat.profane for line in c.reply)
                self._write(c, profane, ids)
                used.update(ids)
        st.used_messages += len(used)
        for line in chat.lines:
            if line.id not in used:
                st.drop_reasons[reasons.get(line.id, "outside_context_window")] += 1

    def close(self) -> Written:
        try:
            for fmt, split in list(self.buffers):
                if self.buffers[fmt, split]:
                    self._flush(fmt, split)
        finally:
            for f in self.files.values():
                f.close()
        self.stats.examples = self.example_pool
        files = {
            str(Path(self.files[key].name).relative_to(self.out)): self.hashes[key].hexdigest()
            for key in sorted(self.files)
        }
        if self.holdout and not self.stats.samples["test"] and self.written_sessions > 1 and self.dcfg.test_ratio:
            files = self._hold_out(self.holdout)
        return Written(self.stats, self.token_texts, files)

    def _hold_out(self, holdout: Holdout) -> dict[str, str]:
        """Move one session's samples from train to test, in every format and in meta.jsonl.

        Only when no session fell in the test split (small histories), so every sample so far is a
        training sample and conversation id n is line n of each train file. Returns the new file hashes."""
        start, end = holdout.first - 1, holdout.last
        for fmt in self.dcfg.formats:
            train = self.out / split_name("train", fmt)
            lines = train.read_bytes().splitlines(keepends=True)
            train.write_bytes(b"".join(lines[:start] + lines[end:]))
            (self.out / split_name("test", fmt)).write_bytes(b"".join(lines[start:end]))
        meta = self.out / "meta.jsonl"
        lines = meta.read_bytes().splitlines(keepends=True)
        lines[start:end] = [line.replace(b'"split": "train"', b'"split": "test"', 1) for line in lines[start:end]]
        meta.write_bytes(b"".join(lines))
        moved = end - start
        self.stats.samples["train"] -= moved
        self.stats.samples["test"] += moved
        self.stats.held_out_fallback = moved
        paths = sorted(p for p in self.out.rglob("*.jsonl"))
        return {str(p.relative_to(self.out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    def _clean(self, candidates: list[Candidate], blocked: set[int]) -> None:
        d = self.dcfg
        for c in candidates:
            if d.drop_placeholder_replies and placeholder_only(line.category for line in c.reply):
                c.dropped = "placeholder_only_reply"
            elif d.blocked_action == "drop" and any(line.id in blocked for line in c.reply):
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
            bucket = bucket_of(c.session_key)
            session = self.session_info[c.session_key] = (
                "test" if bucket < self.dcfg.test_ratio else "train",
                _short_hash(c.session_key),
                formats.encode(c.chat_name),
            )
            self.written_sessions += 1
            if session[0] == "train" and (self.holdout is None or bucket < self.holdout.bucket):
                self.holdout = Holdout(bucket, c.session_key, self.conversation_id, self.conversation_id)
        elif self.holdout and self.holdout.key == c.session_key:
            self.holdout.last = self.conversation_id  # a session's samples are written one after another
        split, session_hash, chat_json = session
        st = self.stats
        st.samples[split] += 1
        st.profane_samples += profane
        st.reply_bubbles[len(c.reply)] += 1
        st.reply_chars[sum(len(line.text) for line in c.reply)] += 1
        turns = self._turns(c)
        encoded = [(u[1], a[1]) for u, a in zip(turns[0::2], turns[1::2], strict=True)]
        for make, buffer in self._outputs(split):
            buffer.append(make(encoded))
        # meta.jsonl by hand too (see formats.py); the same as json.dumps of the record
        reply_ids = ", ".join(str(line.id) for line in c.reply)
        tags = '"profanity"' if profane else ""
        meta = self.buffers.setdefault(("meta", ""), [])
        meta.append(
            f'{{"conversation_id": {self.conversation_id}, "split": "{split}", "chat": {chat_json}, '
            f'"group": {"true" if c.is_group else "false"}, "session": "{session_hash}", '
            f'"message_ids": [{", ".join(map(str, ids))}], "reply_ids": [{reply_ids}], '
            f'"tags": [{tags}]}}'
        )  # fmt: skip
        if len(meta) >= 4096:  # one write per few thousand lines, not one per line
            for key, buffer in self.buffers.items():
                if buffer:
                    self._flush(*key)
        self._reservoir(turns)

    def _outputs(self, split: str) -> list[tuple[Callable[[list[tuple[str, str]]], str], list[str]]]:
        """(line maker, buffer) for each format written, per split, made once."""
        if (outputs := self.outputs.get(split)) is None:
            outputs = self.outputs[split] = [
                (self.line_makers[fmt], self.buffers.setdefault((fmt, split), [])) for fmt in self.dcfg.formats
            ]
        return outputs

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

    def _flush(self, fmt: str, split: str) -> None:
        """Write a buffer, hashing as we go (manifest.json records each file's sha256)."""
        f = self.files.get((fmt, split))
        if f is None:
            path = self.out / (split_name(split, fmt) if split else f"{fmt}.jsonl")
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
