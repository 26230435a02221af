"""The fast ingest (chunks read by worker processes, staged batches, a bulk load that builds the
indexes afterwards, merging in SQL) stores exactly what the plainest path stores: every row
mapped and rendered here, one at a time, and written through `SourceWriter.write` into a store
whose indexes are all in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import UIN

from wechat_avatar import ingest as pipeline
from wechat_avatar.config import AvatarConfig
from wechat_avatar.render import render
from wechat_avatar.sources import pc3, pywxdump
from wechat_avatar.sources.base import BadRecord, Hints
from wechat_avatar.sources.detect import open_sources
from wechat_avatar.staging import message_row
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace

TABLES = {"messages": "id", "merges": "rowid", "chats": "id", "contacts": "wxid", "members": "chat_id, wxid"}


def inputs(export: Any, formats: dict[str, Any]) -> dict[str, list[Path]]:
    return {
        "android": [export.db_path, export.prefs_dir],
        "pc3": [formats["pc3"].path],
        "pywxdump": [formats["pywxdump"].path],
    }


def plain_ingest(paths: list[Path], store: Store, cfg: AvatarConfig) -> None:
    """The reference: no workers, no chunks, no bulk load, one row per write."""
    hints = Hints(timezone=cfg.ingest.timezone, account=lambda: a.wxid if (a := store.account()) else None)
    for source in open_sources(paths, cfg.ingest, hints):
        with store.transaction():
            store.set_account(source.account())
            store.upsert_contacts(source.contacts())
            store.upsert_members(source.members())
            writer, mapper = store.writer(source.source_key), source.row_mapper()
            for raw in source.rows():
                try:
                    msg = mapper(raw)
                except BadRecord:
                    continue
                writer.write([message_row(msg, render(msg.base_type, msg.sub_type, msg.content, cfg.render))])


def fast_ingest(paths: list[Path], store: Store, cfg: AvatarConfig) -> list[pipeline.SourceReport]:
    return pipeline.ingest(paths, store, cfg)


def tables(workspace: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(workspace / "chat.db")
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()}
    finally:
        conn.close()


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch) -> AvatarConfig:
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_MESSAGES", 1)  # workers even for 1500 messages
    monkeypatch.setattr(pc3, "CHUNK_ROWS", 97)  # many chunks, none aligned with anything
    monkeypatch.setattr(pywxdump, "CHUNK_ROWS", 97)  # a few files per task
    config = AvatarConfig()
    config.ingest.uin = UIN
    config.ingest.batch_size = 128
    return config


@pytest.mark.parametrize(
    "order",
    [["android"], ["pc3"], ["pywxdump"], ["android", "pc3", "pywxdump"], ["pywxdump", "pc3", "android"]],
    ids="+".join,
)
def test_fast_ingest_stores_what_the_plain_path_stores(
    order: list[str], export: Any, formats: dict[str, Any], cfg: AvatarConfig, tmp_path: Path
) -> None:
    paths = inputs(export, formats)
    for name, ingest in (("plain", plain_ingest), ("fast", fast_ingest)):
        for _ in range(2):  # the second time adds nothing
            for fmt in order:
                with Store.open(Workspace(tmp_path / name)) as store:
                    ingest(paths[fmt], store, cfg)
    fast, plain = tables(tmp_path / "fast"), tables(tmp_path / "plain")
    assert len(fast["messages"]) == 1500 and fast == plain
    assert len(fast["merges"]) == 1500 * (len(order) - 1)


def test_a_source_id_seen_twice_in_a_bulk_load_is_stored_once(
    formats: dict[str, Any], cfg: AvatarConfig, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    first = sorted(formats["pywxdump"].out.rglob("*.csv"))[0]
    copy = export / first.parent.name / first.name.replace("_0_", "_9000_")
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())  # the same chat page exported twice
    (copy.parent / "users.json").write_bytes((first.parent / "users.json").read_bytes())
    paths = [formats["pywxdump"].path, export]
    for name, ingest in (("plain", plain_ingest), ("fast", fast_ingest)):
        with Store.open(Workspace(tmp_path / name)) as store:
            ingest(paths, store, cfg)
    fast, plain = tables(tmp_path / "fast"), tables(tmp_path / "plain")
    assert len(fast["messages"]) == 1500 and fast == plain
