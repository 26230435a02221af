"""sources -> canonical store: stream each source through its mapper and the renderer into chat.db.

Each source is one transaction: it lands whole or not at all, so a damaged input never
leaves half a history behind or touches what earlier ingests wrote. The one exception is
named: a PC reader whose shard is damaged keeps the rows that read and says in its notes
(the summary) which file, and which rows, it could not read.

A big ingest is a pipeline: worker processes read a share of the input (a source's
`chunks()`, e.g. a few CSV files; else a batch of raw rows this process read), map and render
it, and stage the rows as a small SQLite image (`staging.staged`); this process loads each
image in input order and moves it into chat.db with set-based SQL, binding no value of its
own, so it keeps up with the workers; threads could not overlap the work (the GIL). Small
inputs skip the workers, whose start-up would cost more than they save.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from wechat_avatar.config import AvatarConfig, RenderConfig
from wechat_avatar.processes import START_METHOD, fresh_std_streams, quiet_gc
from wechat_avatar.render import Rendered, render
from wechat_avatar.sources.base import Chunk, Hints, RowMapper, Source, map_rows
from wechat_avatar.sources.detect import open_sources
from wechat_avatar.staging import SCRATCH, Prepared, message_row, staged
from wechat_avatar.store import Store

T = TypeVar("T")
Task = list[Sequence[Any]] | Chunk  # raw rows read here, or a share of the input a worker reads itself
PARALLEL_MIN_MESSAGES = 20_000  # below this, starting a worker costs more than it saves

# Given a description and a total (None if unknown), returns the function to call with advances.
ProgressHook = Callable[[str, int | None], Callable[[int], None]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """itertools.batched arrived in Python 3.12; we support 3.11."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def prepare(
    task: Task, mapper: RowMapper, cfg: RenderConfig, scratch: Path, newest: dict[str, int] | None = None
) -> Prepared:
    """Read (if a chunk), map, render and stage one batch (runs in a worker process for big
    inputs). A chunk that stages itself may leave its image as a file in `scratch`.

    `newest` (an incremental re-ingest): per chat, the time of the newest message chat.db holds
    of this source; older messages of that chat are already stored, and are neither rendered nor
    staged. Those of the same time go on, and the store's ON CONFLICT tells them apart."""
    column_wise = newest is None and not isinstance(task, list) and hasattr(task, "stage")
    if column_wise and (done := task.stage(cfg, scratch)) is not None:  # type: ignore[union-attr]
        return done  # the chunk mapped itself column-wise
    raw, unread, notes = (task, Counter(), Counter()) if isinstance(task, list) else task.read()
    messages, skipped, repaired = map_rows(raw, mapper)
    already = 0
    if newest:
        read = len(messages)
        messages = [m for m in messages if m.timestamp_ms >= newest.get(m.chat_id, m.timestamp_ms)]
        already = read - len(messages)
    rendered = render_all(messages, cfg)
    rows = [message_row(m, r) for m, r in zip(messages, rendered, strict=True)]
    return Prepared(
        image=staged(rows),
        ids=[row[1] for row in rows],
        keys=[row[-1] for row in rows],
        chats=sorted({row[2] for row in rows}),
        skipped=skipped + unread,
        repaired=repaired,
        categories=Counter(r.category for r in rendered),
        statuses=Counter(r.status for r in rendered),
        notes=notes,
        already=already,
    )


def render_all(messages: list[Any], cfg: RenderConfig) -> list[Rendered]:
    """Render a batch; a content seen before in the batch is rendered once (exports repeat
    the same placeholder payloads, chats the same few words and sticker codes)."""
    done: dict[tuple[int, int, str], Rendered] = {}
    out = []
    for m in messages:
        key = (m.base_type, m.sub_type, m.content)
        r = done.get(key)
        if r is None:
            r = done[key] = render(m.base_type, m.sub_type, m.content, cfg)
        out.append(r)
    return out


def tasks(source: Source, batch_size: int) -> Iterator[Task]:
    """The source's chunks where it has them (workers read those), else batches of its rows."""
    chunks = source.chunks() if hasattr(source, "chunks") else None
    return iter(chunks) if chunks is not None else batched(source.rows(), batch_size)


def prepared_batches(
    source: Source, cfg: AvatarConfig, parallel: bool, newest: dict[str, int] | None = None
) -> Iterator[Prepared]:
    """Batches in input order; with `parallel`, workers prepare the next batches while this
    process writes the current one. `newest`: see `prepare`."""
    mapper, todo = source.row_mapper(), tasks(source, cfg.ingest.batch_size)
    # staged images handed over as files (memory-backed where Linux has /dev/shm), not through
    # a pipe: 0.2 s less copying at 1M messages; the folder goes with the ingest, whatever happens
    with tempfile.TemporaryDirectory(prefix="wechat-avatar-stage-", dir=SCRATCH) as folder:
        scratch = Path(folder)
        if not parallel:
            for task in todo:
                yield prepare(task, mapper, cfg.render, scratch, newest)
            return
        workers = cfg.ingest.render_workers
        context = multiprocessing.get_context(START_METHOD)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=fresh_std_streams) as pool:
            pending: deque[tuple[Task, Future[Prepared] | None]] = deque()
            for task in todo:
                pending.append((task, _submit(pool, task, mapper, cfg.render, scratch, newest)))
                if len(pending) > 2 * workers:  # one queued behind each running: no worker waits for this process
                    yield _collect(*pending.popleft(), mapper, cfg.render, scratch, newest)
            while pending:
                yield _collect(*pending.popleft(), mapper, cfg.render, scratch, newest)


def _submit(
    pool: ProcessPoolExecutor, task: Task, mapper: RowMapper, cfg: RenderConfig, scratch: Path,
    newest: dict[str, int] | None = None,
) -> Future[Prepared] | None:  # fmt: skip
    try:
        return pool.submit(prepare, task, mapper, cfg, scratch, newest)
    except BrokenProcessPool:  # a worker could not start (e.g. no importable __main__)
        return None


def _collect(
    task: Task, future: Future[Prepared] | None, mapper: RowMapper, cfg: RenderConfig, scratch: Path,
    newest: dict[str, int] | None = None,
) -> Prepared:  # fmt: skip
    """A worker's result, or the batch prepared here if the worker is gone: nothing is lost."""
    try:
        if future is not None:
            return future.result()
    except BrokenProcessPool:
        pass
    return prepare(task, mapper, cfg, scratch, newest)


@dataclass
class SourceReport:
    kind: str
    path: Path
    source_key: str
    read: int = 0
    added: int = 0
    merged: int = 0  # already stored from another source (see store.SourceWriter)
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what the reader wants the user to know
    counted_notes: Counter[str] = field(default_factory=Counter)  # chunks' notes: template -> count
    resumed_note: str = ""  # where an incremental re-ingest started reading, if the reader skipped ahead

    @property
    def already_stored(self) -> int:
        return self.read - self.added - self.merged

    def add(self, batch: Prepared, added: int, merged: int) -> None:
        self.read += len(batch.keys) + batch.already
        self.added += added
        self.merged += merged
        for mine, theirs in ((self.skipped, batch.skipped), (self.repaired, batch.repaired),
                             (self.categories, batch.categories), (self.statuses, batch.statuses),
                             (self.counted_notes, batch.notes)):  # fmt: skip
            mine.update(theirs)


def ingest_source(
    store: Store,
    source: Source,
    cfg: AvatarConfig,
    advance: Callable[[int], None] | None = None,
    progress: ProgressHook | None = None,
) -> SourceReport:
    report = SourceReport(source.kind, source.path, source.source_key)
    with store.transaction():
        with store.deferred_index(progress):
            store.set_account(source.account())
            store.upsert_contacts(source.contacts())
            store.upsert_members(source.members())
            newest = resume(store, source, report) if cfg.ingest.incremental else None
            parallel = cfg.ingest.render_workers > 0 and source.count() >= PARALLEL_MIN_MESSAGES
            writer = store.writer(source.source_key)
            for batch in prepared_batches(source, cfg, parallel, newest):
                report.add(batch, *writer.write_staged(batch.image, batch.ids, batch.keys, batch.chats))
                if advance:
                    advance(len(batch.keys) + batch.already + batch.skipped.total())
        report.added -= store.repeated_ids  # a bulk load's rows whose source id came before: stored once
        report.skipped.update(source.skipped)  # rows the reader itself could not split into fields
        # complete only once the rows are read
        report.notes = [*source.notes, *(note.format(n) for note, n in report.counted_notes.items())]
        if report.resumed_note:
            report.notes.append(report.resumed_note)
        store.record_ingest(source.source_key, source.kind, source.path, report.read, report.added,
                            report.skipped.total(), report.merged)  # fmt: skip
    return report


def resume(store: Store, source: Source, report: SourceReport) -> dict[str, int] | None:
    """An incremental re-ingest: what chat.db holds of this source already, told to the reader
    (one with ordered ids reads only rows after the last one stored) and returned for `prepare`
    (per chat, older messages are not rendered again). None where the source is new here."""
    stored = store.stored(source.source_key)
    if stored is None:
        return None
    if hasattr(source, "resume") and (note := source.resume(stored)):
        report.resumed_note = note
    return stored.newest


def ingest(
    paths: list[Path],
    store: Store,
    cfg: AvatarConfig,
    progress: ProgressHook | None = None,
) -> list[SourceReport]:
    """Ingest every source found in `paths`; `cfg.ingest.self_wxid` (--self) says whose history an export is."""
    account = store.account
    hints = Hints(self_wxid=cfg.ingest.self_wxid, timezone=cfg.ingest.timezone, names=store.contact_names,
                  account=lambda: (a.wxid if (a := account()) else None))  # fmt: skip
    reports = []
    # closed whatever happens: it removes the folder archives were unpacked into
    with quiet_gc(), closing(open_sources(paths, cfg.ingest, hints)) as sources:
        for source in sources:
            try:
                advance = progress(f"{source.kind} {source.path.name}", source.count()) if progress else None
                reports.append(ingest_source(store, source, cfg, advance, progress))
            finally:
                source.close()
    return reports
