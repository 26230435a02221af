"""sources -> canonical store: stream each source through the renderer into chat.db.

Each source is one transaction: it lands whole or not at all, so a damaged input never
leaves half a history behind or touches what earlier ingests wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

from wechat_avatar.config import AvatarConfig
from wechat_avatar.render import render
from wechat_avatar.sources.base import Source
from wechat_avatar.sources.detect import open_sources
from wechat_avatar.store import Store

T = TypeVar("T")

# Given a description and a total (None if unknown), returns the function to call with advances.
ProgressHook = Callable[[str, int | None], Callable[[int], None]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """itertools.batched arrived in Python 3.12; we support 3.11."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class SourceReport:
    kind: str
    path: Path
    source_key: str
    read: int = 0
    added: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def already_stored(self) -> int:
        return self.read - self.added


def ingest_source(
    store: Store, source: Source, cfg: AvatarConfig, advance: Callable[[int], None] | None = None
) -> SourceReport:
    report = SourceReport(source.kind, source.path, source.source_key)
    with store.transaction():
        store.set_account(source.account())
        store.upsert_contacts(source.contacts())
        store.upsert_members(source.members())
        for chunk in batched(source.messages(), cfg.ingest.batch_size):
            rendered = [(m, render(m.base_type, m.sub_type, m.content, cfg.render)) for m in chunk]
            for _, r in rendered:
                report.categories[r.category] += 1
                report.statuses[r.status] += 1
            report.added += store.insert_messages(rendered)
            report.read += len(chunk)
            if advance:
                advance(len(chunk))
        report.skipped = source.skipped
        report.repaired = source.repaired
        store.record_ingest(
            source.source_key, source.kind, source.path, report.read, report.added, report.skipped.total()
        )
    return report


def ingest(
    paths: list[Path], store: Store, cfg: AvatarConfig, progress: ProgressHook | None = None
) -> list[SourceReport]:
    reports = []
    for source in open_sources(paths, cfg.ingest):
        try:
            advance = progress(f"{source.kind} {source.path.name}", source.count()) if progress else None
            reports.append(ingest_source(store, source, cfg, advance))
        finally:
            source.close()
    return reports
