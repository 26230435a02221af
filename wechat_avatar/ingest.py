"""sources -> canonical store: stream each source through its mapper and the renderer into chat.db.

Each source is one transaction: it lands whole or not at all, so a damaged input never
leaves half a history behind or touches what earlier ingests wrote.

A big ingest is a three-stage pipeline: this process reads raw rows and writes chat.db,
while worker processes map and render the batch in between. Reading, mapping+rendering
and writing each take about a third of the time, and threads could not overlap them (the
GIL); small inputs skip the workers, whose start-up would cost more than they save.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from wechat_avatar.config import AvatarConfig, RenderConfig
from wechat_avatar.render import render
from wechat_avatar.sources.base import Hints, RowMapper, Source, map_rows
from wechat_avatar.sources.detect import open_sources
from wechat_avatar.store import Store, message_row

T = TypeVar("T")
PARALLEL_MIN_MESSAGES = 20_000  # below this, starting a worker costs more than it saves

# Given a description and a total (None if unknown), returns the function to call with advances.
ProgressHook = Callable[[str, int | None], Callable[[int], None]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """itertools.batched arrived in Python 3.12; we support 3.11."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class Prepared:
    """One batch, mapped and rendered: store rows plus what the report counts."""

    rows: list[tuple[Any, ...]]
    skipped: Counter[str]
    repaired: Counter[str]
    categories: Counter[str]
    statuses: Counter[str]


def prepare(raw: list[Sequence[Any]], mapper: RowMapper, cfg: RenderConfig) -> Prepared:
    """Map and render one batch of raw rows (runs in a worker process for big inputs)."""
    messages, skipped, repaired = map_rows(raw, mapper)
    rendered = [render(m.base_type, m.sub_type, m.content, cfg) for m in messages]
    return Prepared(
        rows=[message_row(m, r) for m, r in zip(messages, rendered, strict=True)],
        skipped=skipped,
        repaired=repaired,
        categories=Counter(r.category for r in rendered),
        statuses=Counter(r.status for r in rendered),
    )


def prepared_batches(
    raw: Iterable[Sequence[Any]], mapper: RowMapper, cfg: AvatarConfig, parallel: bool
) -> Iterator[Prepared]:
    """Batches in input order; with `parallel`, workers prepare batch k while this process
    reads batch k+1 and writes batch k-1."""
    batches = batched(raw, cfg.ingest.batch_size)
    if not parallel:
        for batch in batches:
            yield prepare(batch, mapper, cfg.render)
        return
    workers = cfg.ingest.render_workers
    # spawn, not fork: the parent holds open SQLite handles and may run threads
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[tuple[list[Sequence[Any]], Future[Prepared] | None]] = deque()
        for batch in batches:
            pending.append((batch, _submit(pool, batch, mapper, cfg.render)))
            if len(pending) > workers:
                yield _collect(*pending.popleft(), mapper, cfg.render)
        while pending:
            yield _collect(*pending.popleft(), mapper, cfg.render)


def _submit(
    pool: ProcessPoolExecutor, batch: list[Sequence[Any]], mapper: RowMapper, cfg: RenderConfig
) -> Future[Prepared] | None:
    try:
        return pool.submit(prepare, batch, mapper, cfg)
    except BrokenProcessPool:  # a worker could not start (e.g. no importable __main__)
        return None


def _collect(
    batch: list[Sequence[Any]], future: Future[Prepared] | None, mapper: RowMapper, cfg: RenderConfig
) -> Prepared:
    """A worker's result, or the batch prepared here if the worker is gone: nothing is lost."""
    try:
        if future is not None:
            return future.result()
    except BrokenProcessPool:
        pass
    return prepare(batch, mapper, cfg)


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

    @property
    def already_stored(self) -> int:
        return self.read - self.added - self.merged

    def add(self, batch: Prepared, added: int, merged: int) -> None:
        self.read += len(batch.rows)
        self.added += added
        self.merged += merged
        for mine, theirs in ((self.skipped, batch.skipped), (self.repaired, batch.repaired),
                             (self.categories, batch.categories), (self.statuses, batch.statuses)):  # fmt: skip
            mine.update(theirs)


def ingest_source(
    store: Store, source: Source, cfg: AvatarConfig, advance: Callable[[int], None] | None = None
) -> SourceReport:
    report = SourceReport(source.kind, source.path, source.source_key)
    with store.transaction(), store.deferred_index():
        store.set_account(source.account())
        store.upsert_contacts(source.contacts())
        store.upsert_members(source.members())
        parallel = cfg.ingest.render_workers > 0 and source.count() >= PARALLEL_MIN_MESSAGES
        writer = store.writer(source.source_key)
        for batch in prepared_batches(source.rows(), source.row_mapper(), cfg, parallel):
            report.add(batch, *writer.write(batch.rows))
            if advance:
                advance(len(batch.rows) + batch.skipped.total())
        report.skipped.update(source.skipped)  # rows the reader itself could not split into fields
        report.notes = list(source.notes)  # complete only once the rows are read
        store.record_ingest(source.source_key, source.kind, source.path, report.read, report.added,
                            report.skipped.total(), report.merged)  # fmt: skip
    return report


def ingest(
    paths: list[Path],
    store: Store,
    cfg: AvatarConfig,
    progress: ProgressHook | None = None,
    self_wxid: str | None = None,
) -> list[SourceReport]:
    """Ingest every source found in `paths`; `self_wxid` (--self) says whose history an export is."""
    account = store.account
    hints = Hints(self_wxid=self_wxid, timezone=cfg.ingest.timezone, names=store.contact_names,
                  account=lambda: (a.wxid if (a := account()) else None))  # fmt: skip
    reports = []
    for source in open_sources(paths, cfg.ingest, hints):
        try:
            advance = progress(f"{source.kind} {source.path.name}", source.count()) if progress else None
            reports.append(ingest_source(store, source, cfg, advance))
        finally:
            source.close()
    return reports
