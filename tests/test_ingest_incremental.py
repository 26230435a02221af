"""A grown export (the same history exported again, later) re-ingested incrementally gives the
store a fresh full ingest of it gives, in every format with stable ids; the same export twice
adds nothing; an incremental ingest killed mid-way leaves the store as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wechat_avatar.config import AvatarConfig
from wechat_avatar.ingest import ingest
from wechat_avatar.store import Store
from wechat_avatar.synth.formats import FORMATS, SynthExport, synth_export
from wechat_avatar.workspace import Workspace

MESSAGES, NEW = 1500, 150
TABLES = ("account", "contacts", "chats", "members")
# every column of every message; the store's own id too where the input is in one global order
MESSAGE_SQL = "SELECT * FROM messages ORDER BY source, source_id"


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SynthExport, SynthExport]]:
    """(the export taken earlier, the grown one) per format: the same history, NEW messages apart."""
    base = tmp_path_factory.mktemp("grown")
    return {fmt: (synth_export(base / fmt / "old", fmt, messages=MESSAGES, seed=5, leave_out_newest=NEW),
                  synth_export(base / fmt / "new", fmt, messages=MESSAGES, seed=5))
            for fmt in FORMATS}  # fmt: skip


def config(made: SynthExport, **ingest: Any) -> AvatarConfig:
    cfg = AvatarConfig()
    cfg.ingest = cfg.ingest.model_copy(update={"self_wxid": made.self_wxid, "batch_size": 100, **ingest})
    return cfg


def run(workspace: Path, made: SynthExport, **ingest_cfg: Any) -> Any:
    """The report of the export's one source (chatlog's JSON: its CSV copy merges into it)."""
    with Store.open(Workspace(workspace)) as store:
        reports = ingest([made.path], store, config(made, **ingest_cfg))
    assert all(r.added == 0 for r in reports[1:])
    return reports[0]


def dump(workspace: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(workspace / "chat.db")
    try:
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
        return {**tables, "messages": conn.execute(MESSAGE_SQL).fetchall()}
    finally:
        conn.close()


def without_store_ids(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [row[1:] for row in rows]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_grown_export_ingested_incrementally_equals_a_full_ingest(
    exports: dict[str, tuple[SynthExport, SynthExport]], fmt: str, tmp_path: Path
) -> None:
    old, grown = exports[fmt]
    assert old.messages == MESSAGES - NEW and grown.messages == MESSAGES
    first = run(tmp_path / "inc", old)
    again = run(tmp_path / "inc", grown)
    run(tmp_path / "full", grown)
    inc, full = dump(tmp_path / "inc"), dump(tmp_path / "full")
    assert first.added > 0 and again.added == len(full["messages"]) - first.added > 0
    for table in TABLES:
        assert inc[table] == full[table], table
    if fmt in ("android", "pc3"):  # read in one global order: the store's ids match too
        assert inc["messages"] == full["messages"]
    else:  # read chat by chat: the new messages of one chat come after every old one
        assert without_store_ids(inc["messages"]) == without_store_ids(full["messages"])
    twice = run(tmp_path / "inc", grown)
    assert twice.added == 0 and dump(tmp_path / "inc") == inc


def test_android_resumes_after_the_last_msgid_and_full_rereads_all(
    exports: dict[str, tuple[SynthExport, SynthExport]], tmp_path: Path
) -> None:
    old, grown = exports["android"]
    run(tmp_path, old)
    report = run(tmp_path, grown)
    assert report.read == report.added  # nothing older was read at all
    assert any("msgId" in note for note in report.notes)
    full = run(tmp_path, grown, incremental=False)
    assert full.read == MESSAGES and full.added == 0


def test_android_reads_every_row_where_its_msgids_began_again(
    exports: dict[str, tuple[SynthExport, SynthExport]], tmp_path: Path
) -> None:
    """The export's row under chat.db's last msgId is another message (as after a reinstall):
    nothing is skipped on the strength of the ids."""
    old, grown = exports["android"]
    run(tmp_path, old)
    conn = sqlite3.connect(tmp_path / "chat.db")
    with conn:
        conn.execute("UPDATE messages SET ts_ms = ts_ms + 1000 WHERE id = (SELECT max(id) FROM messages)")
    conn.close()
    report = run(tmp_path, grown)
    assert report.read == MESSAGES and report.added == NEW
    assert any("another message" in note for note in report.notes)


def test_a_killed_incremental_ingest_leaves_the_store_as_it_was(
    exports: dict[str, tuple[SynthExport, SynthExport]], tmp_path: Path
) -> None:
    """kill -9 of the ingesting process once its first new rows are written (in its transaction)."""
    old, grown = exports["pc3"]
    run(tmp_path, old)
    before = dump(tmp_path)
    script = f"""
import os, signal
from pathlib import Path
from wechat_avatar.config import AvatarConfig
from wechat_avatar.ingest import ingest
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace
cfg = AvatarConfig()
cfg.ingest.self_wxid, cfg.ingest.batch_size = {grown.self_wxid!r}, 20
store = Store.open(Workspace(Path({str(tmp_path)!r})))
def progress(what, total):
    def advance(n):
        if (seen := store.count("messages")) > {len(before["messages"])}:  # new rows written, uncommitted
            print(seen, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    return advance
ingest([Path({str(grown.path)!r})], store, cfg, progress)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=Path(__file__).parent.parent)
    assert proc.returncode == -9, proc.stderr.decode()
    assert int(proc.stdout) > len(before["messages"])  # killed with new rows written
    assert dump(tmp_path) == before
    run(tmp_path, grown)
    run(tmp_path / "full", grown)
    assert dump(tmp_path)["messages"] == dump(tmp_path / "full")["messages"]
