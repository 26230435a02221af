"""The canonical store: one SQLite file, WORKSPACE/chat.db, that every later stage reads.

Writing is here and nowhere else: every source goes through the same upserts, keyed by
natural ids, so re-ingesting adds nothing. The schema only changes through named
migrations recorded in `schema_migrations`.

The same history read from two sources (the phone and the PC) is stored once: a message
that another source already holds, matched on the server message id where both have one,
else on its merge key (see `merge_key`), is not inserted but recorded in `merges`.

Rows arrive as a batch staged in a small in-memory SQLite image (`staging.staged`), which a worker
process builds; the store loads it as the attached schema `stage` and moves it into
`messages` with one set-based INSERT … SELECT, merging in SQL. Python never touches a row
here: at a million messages, binding every value in this process cost more than the rest
of the ingest.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wechat_avatar.canonical import Account, Contact, Member, Message
from wechat_avatar.errors import UsageError, WorkspaceError
from wechat_avatar.render import Rendered
from wechat_avatar.staging import KEY, MESSAGE_COLUMNS, SOURCE_ID, KeySet, Stored, hash64, message_row, staged
from wechat_avatar.workspace import Workspace

CHAT_TIME_INDEX = "CREATE INDEX messages_chat_time ON messages (chat_id, ts_ms)"

_INITIAL = f"""
CREATE TABLE account (
    id       INTEGER PRIMARY KEY CHECK (id = 1),  -- one exporting account per workspace
    wxid     TEXT NOT NULL,
    nickname TEXT NOT NULL DEFAULT ''
);
CREATE TABLE contacts (
    wxid     TEXT PRIMARY KEY,
    alias    TEXT NOT NULL DEFAULT '',
    remark   TEXT NOT NULL DEFAULT '',
    nickname TEXT NOT NULL DEFAULT '',
    kind     TEXT NOT NULL               -- self|friend|group|official|openim|system|stranger
);
CREATE TABLE chats (
    id   TEXT PRIMARY KEY,               -- contact wxid, or …@chatroom
    kind TEXT NOT NULL                   -- private|group
);
CREATE TABLE members (
    chat_id      TEXT NOT NULL,
    wxid         TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',  -- the member's name inside this group
    PRIMARY KEY (chat_id, wxid)
);
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,         -- e.g. android:wxid_me
    source_id     TEXT NOT NULL,         -- unique inside source
    server_id     INTEGER,               -- msgSvrId where the source has one
    chat_id       TEXT NOT NULL REFERENCES chats (id),
    sender        TEXT NOT NULL,         -- wxid; '' for system messages
    is_self       INTEGER NOT NULL,
    ts_ms         INTEGER NOT NULL,      -- UTC milliseconds
    base_type     INTEGER NOT NULL,
    sub_type      INTEGER NOT NULL,
    source_type   INTEGER,               -- the source's own type code
    content       TEXT NOT NULL,         -- raw content, group prefix removed
    text          TEXT NOT NULL,         -- rendered
    category      TEXT NOT NULL,
    render_status TEXT NOT NULL,         -- ok|dropped|unknown|failed
    quote         TEXT NOT NULL DEFAULT '',
    render_note   TEXT NOT NULL DEFAULT '',
    UNIQUE (source, source_id)
);
{CHAT_TIME_INDEX};
CREATE TABLE ingests (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    read        INTEGER NOT NULL,
    added       INTEGER NOT NULL,
    skipped     INTEGER NOT NULL
);
-- Names resolved, for people opening chat.db in any SQLite tool.
CREATE VIEW message_view AS
SELECT m.id, m.chat_id, c.kind AS chat_kind,
       COALESCE(NULLIF(cc.remark, ''), NULLIF(cc.nickname, ''), m.chat_id) AS chat_name,
       m.sender,
       CASE WHEN m.is_self THEN COALESCE(NULLIF(a.nickname, ''), m.sender)
            ELSE COALESCE(NULLIF(mem.display_name, ''), NULLIF(sc.remark, ''), NULLIF(sc.nickname, ''),
                          NULLIF(sc.alias, ''), m.sender) END AS sender_name,
       m.is_self, m.ts_ms, m.base_type, m.sub_type, m.category, m.render_status, m.text, m.quote
FROM messages m
JOIN chats c ON c.id = m.chat_id
LEFT JOIN account a ON a.id = 1
LEFT JOIN contacts cc ON cc.wxid = m.chat_id
LEFT JOIN contacts sc ON sc.wxid = m.sender
LEFT JOIN members mem ON mem.chat_id = m.chat_id AND mem.wxid = m.sender;
"""

_MERGE = """
-- merge_key(): the same message read from any source
ALTER TABLE messages ADD COLUMN merge_key INTEGER;
ALTER TABLE ingests ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
-- A message read from a source but already stored from another one: where it went.
CREATE TABLE merges (
    source     TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    matched_on TEXT NOT NULL,            -- server_id|merge_key
    PRIMARY KEY (source, source_id)
);
"""

_SOURCE_ID_INDEX_V3 = "CREATE UNIQUE INDEX messages_source_id ON messages (source, source_id)"  # migration 3
SOURCE_ID_INDEX = "CREATE UNIQUE INDEX messages_source_id ON messages (source_id, source)"
_VIEW = _INITIAL[_INITIAL.index("CREATE VIEW message_view") :].strip()  # the view, as migration 1 made it

_NAMED_KEY = f"""
-- (source, source_id) as a named unique index, no longer a table constraint, so that a bulk
-- load into an empty store builds it once, after the rows (Store.deferred_index): one sort
-- instead of a million random B-tree inserts. A constraint cannot be dropped: the table is
-- rebuilt, same columns in the same order (migrations run with foreign keys off).
DROP VIEW message_view;
CREATE TABLE messages_new (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,         -- e.g. android:wxid_me
    source_id     TEXT NOT NULL,         -- unique inside source (messages_source_id)
    server_id     INTEGER,               -- msgSvrId where the source has one
    chat_id       TEXT NOT NULL REFERENCES chats (id),
    sender        TEXT NOT NULL,         -- wxid; '' for system messages
    is_self       INTEGER NOT NULL,
    ts_ms         INTEGER NOT NULL,      -- UTC milliseconds
    base_type     INTEGER NOT NULL,
    sub_type      INTEGER NOT NULL,
    source_type   INTEGER,               -- the source's own type code
    content       TEXT NOT NULL,         -- raw content, group prefix removed
    text          TEXT NOT NULL,         -- rendered
    category      TEXT NOT NULL,
    render_status TEXT NOT NULL,         -- ok|dropped|unknown|failed
    quote         TEXT NOT NULL DEFAULT '',
    render_note   TEXT NOT NULL DEFAULT '',
    merge_key     INTEGER                -- merge_key(): the same message read from any source
);
INSERT INTO messages_new SELECT * FROM messages ORDER BY id;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
{_SOURCE_ID_INDEX_V3};
{CHAT_TIME_INDEX};
{_VIEW}
"""

_ID_FIRST = f"""
-- Source ids indexed id first. A bulk load sorts them once (Store.deferred_index): with the id
-- first nearly every comparison is settled by the first column, where the source (the same in
-- every row of a load) settled none: 0.45 s instead of 0.65 s at 1M messages. Lookups name both
-- columns, so they are served as before. The sources a store holds, which the old order gave
-- by a range lookup, get a table of their own.
DROP INDEX messages_source_id;
{SOURCE_ID_INDEX};
CREATE TABLE sources (source TEXT PRIMARY KEY);
INSERT INTO sources SELECT DISTINCT source FROM messages
"""

# (version, name, sql). Append only; never edit a released migration.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", _INITIAL),
    (2, "cross-source merge", _MERGE),
    (3, "source ids as a named index", _NAMED_KEY),
    (4, "source ids indexed id first, sources table", _ID_FIRST),
]

# Looked up only once a second source arrives: a single-source store never pays for them.
MERGE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS messages_server_id ON messages (server_id) WHERE server_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_merge_key ON messages (merge_key)",
)

_CHAT_KIND = "CASE WHEN substr({0}, -9) = '@chatroom' THEN 'group' ELSE 'private' END"
_INSERT_CHATS = (
    f"INSERT OR IGNORE INTO chats (id, kind) SELECT DISTINCT chat_id, {_CHAT_KIND.format('chat_id')} FROM stage.rows"
)
_ADD_CHAT = f"INSERT OR IGNORE INTO chats (id, kind) VALUES (?1, {_CHAT_KIND.format('?1')})"
_APPEND_MESSAGES = f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT {MESSAGE_COLUMNS} FROM stage.rows ORDER BY rowid"
_INSERT_MESSAGES = f"{_APPEND_MESSAGES} ON CONFLICT (source, source_id) DO NOTHING"
_UPSERT_CONTACT = """
INSERT INTO contacts (wxid, alias, remark, nickname, kind) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (wxid) DO UPDATE SET
    alias    = COALESCE(NULLIF(excluded.alias, ''), alias),
    remark   = COALESCE(NULLIF(excluded.remark, ''), remark),
    nickname = COALESCE(NULLIF(excluded.nickname, ''), nickname),
    kind     = CASE WHEN kind = 'stranger' OR excluded.kind = 'self' THEN excluded.kind ELSE kind END
"""
_UPSERT_MEMBER = """
INSERT INTO members (chat_id, wxid, display_name) VALUES (?, ?, ?)
ON CONFLICT (chat_id, wxid) DO UPDATE SET
    display_name = COALESCE(NULLIF(excluded.display_name, ''), display_name)
"""


_COUNTABLE = {("chats", "kind"), ("contacts", "kind"), ("messages", "category"), ("messages", "render_status")}
# names are resolved per chat and sender (dataset/names.py), not joined per message
_DATASET_ROWS = (
    "SELECT id, chat_id, sender, is_self, ts_ms, category, render_status, text FROM messages "
    "ORDER BY chat_id, ts_ms, id"
)


class DatasetRow(NamedTuple):
    id: int
    chat_id: str
    sender: str
    is_self: int
    ts_ms: int
    category: str
    render_status: str
    text: str


class Store:
    """A connection to chat.db with the project's only write paths and its only SQL."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._bulk = False  # a bulk load into an empty store is under way (see deferred_index)
        self.repeated_ids = 0  # rows the last bulk load dropped at its end: their source id came before

    @classmethod
    def open(cls, workspace: Workspace, *, create: bool = True) -> Store:
        path = workspace.store
        if not create and not path.exists():
            raise UsageError(f"no chat store at {path}", hint="run `wechat-avatar ingest EXPORT --workspace DIR` first")
        try:
            workspace.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None)  # we open transactions explicitly
            # a new store's pages: 8 KiB make the random inserts into the (source, source_id)
            # index, the costliest part of a big ingest, about 10 % cheaper than 4 KiB
            conn.execute("PRAGMA page_size = 8192")
            # a rollback journal, not WAL: ingest writes in one big transaction, and WAL would
            # write every page twice (measured: 1.6x slower inserts)
            conn.execute("PRAGMA journal_mode = DELETE")
        except (OSError, sqlite3.Error) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise WorkspaceError(
                f"cannot use workspace {workspace}: {reason}", hint="pass a writable --workspace DIR"
            ) from err
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -131072")  # up to 128 MiB: the indexes of a 1M-message ingest stay hot
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("ATTACH ':memory:' AS stage")  # each batch is loaded here (see `staged`)
        store = cls(conn, path)
        store._migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: a failed ingest leaves chat.db exactly as it was."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        try:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {v for (v,) in self.conn.execute("SELECT version FROM schema_migrations")}
        except sqlite3.Error as err:
            raise WorkspaceError(
                f"{self.path} is not a usable chat store: {err}", hint="move it away or pick another --workspace"
            ) from err
        latest = MIGRATIONS[-1][0]
        if done and max(done) > latest:
            raise WorkspaceError(f"{self.path} was written by a newer wechat-avatar (schema {max(done)})")
        self.conn.execute("PRAGMA foreign_keys = OFF")  # a table rebuilt under its references
        try:
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                with self.transaction():
                    for statement in sql.split(";\n"):
                        if statement.strip():
                            self.conn.execute(statement)
                    if self.conn.execute("PRAGMA foreign_key_check").fetchone():
                        raise WorkspaceError(f"{self.path}: migration {version} ({name}) broke a reference")
                    self.conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, _now()))
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    @property
    def schema_version(self) -> int:
        return self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]

    # --- writes -------------------------------------------------------------------------

    def set_account(self, account: Account) -> None:
        """Pin the workspace to one exporting account; a second account is refused."""
        current = self.account()
        if current and current.wxid != account.wxid:
            raise WorkspaceError(
                f"this workspace holds {current.wxid}'s history, but the input belongs to {account.wxid}",
                hint="use a separate --workspace for each account",
            )
        self.conn.execute(
            "INSERT INTO account (id, wxid, nickname) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "nickname = COALESCE(NULLIF(excluded.nickname, ''), nickname)",
            (account.wxid, account.nickname),
        )

    def upsert_contacts(self, contacts: Iterable[Contact]) -> None:
        self.conn.executemany(_UPSERT_CONTACT, ((c.wxid, c.alias, c.remark, c.nickname, str(c.kind)) for c in contacts))

    def upsert_members(self, members: Iterable[Member]) -> None:
        self.conn.executemany(_UPSERT_MEMBER, ((m.chat_id, m.wxid, m.display_name) for m in members))

    @contextmanager
    def deferred_index(self, progress: Callable[[str, int], Callable[[int], None]] | None = None) -> Iterator[None]:
        """Bulk load into an empty store: build the message indexes once, after the rows.

        Sorting once is much cheaper than a million random B-tree inserts (1M messages: about
        5 s saved). A source id loaded twice is found when the unique index is built, and
        only then (it is rare) dropped in SQL, keeping the first, with the ids renumbered as
        ON CONFLICT DO NOTHING would have left them (`repeated_ids` says how many): nothing
        is held per row meanwhile, so memory does not grow with the load.
        Use inside a transaction, so the indexes are never missing on disk.
        """
        self.repeated_ids = 0
        if self.conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone():  # not count(*): a scan of them all
            yield
            return
        self.conn.execute("DROP INDEX messages_chat_time")
        self.conn.execute("DROP INDEX messages_source_id")
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False
        done = progress("indexing chat.db", 1) if progress else None  # seconds at millions of rows: say so
        try:
            self.build_indexes(SOURCE_ID_INDEX)
        except sqlite3.IntegrityError:
            self.repeated_ids = self._drop_repeated_ids()
            self.build_indexes(SOURCE_ID_INDEX)
        self.build_indexes(CHAT_TIME_INDEX)
        if done:
            done(1)

    def _drop_repeated_ids(self) -> int:
        """After a bulk load (ids 1..n, one source): delete each row whose source id an earlier
        row has, then number the rest 1..m again in order; returns how many were dropped."""
        before = self.conn.total_changes
        self.conn.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY source_id, source ORDER BY id) AS n FROM messages) WHERE n > 1)"
        )
        dropped = self.conn.total_changes - before
        # negative first, so that no new id meets an old one half-way through
        self.conn.execute(
            "UPDATE messages SET id = -r.n FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages) r "
            "WHERE messages.id = r.id"
        )
        self.conn.execute("UPDATE messages SET id = -id WHERE id < 0")
        return dropped

    def build_indexes(self, *sqls: str) -> None:
        """CREATE INDEX over many rows, sorted in small runs on two threads.

        SQLite's sorter sorts runs of `cache_size` in worker threads (PRAGMA threads) and
        merges them: with 1 MiB runs instead of the 128 MiB cache, a 1M-row index is built in
        0.65 s instead of 1.5 s (runs that fit the CPU caches, two cores sorting at once).
        """
        cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute("PRAGMA threads = 2")
        self.conn.execute("PRAGMA cache_size = -1024")
        try:
            for sql in sqls:
                self.conn.execute(sql)
        finally:
            self.conn.execute(f"PRAGMA cache_size = {int(cache)}")
            self.conn.execute("PRAGMA threads = 0")

    def insert_messages(self, batch: list[tuple[Message, Rendered]]) -> int:
        """Insert a batch, skipping ones already stored; returns how many were new."""
        return self.insert_rows([message_row(m, r) for m, r in batch])

    def insert_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows built by `message_row`, no merging; returns how many were new."""
        self.load_stage(staged(rows))
        added = self.insert_staged([row[SOURCE_ID] for row in rows])
        self.add_sources({row[0] for row in rows})
        return added

    def add_sources(self, sources: Iterable[str]) -> None:
        """Record that messages of these sources are stored (what SourceWriter asks first)."""
        self.conn.executemany("INSERT OR IGNORE INTO sources (source) VALUES (?)", ((s,) for s in sources))

    def load_stage(self, image: bytes | Path) -> None:
        """Make a batch from `staged` the `stage` schema (replacing the last one); a file
        holding the image is read and removed."""
        if isinstance(image, Path):
            data = image.read_bytes()
            image.unlink()
            image = data
        self.conn.deserialize(image, name="stage")

    def insert_staged(self, ids: list[str], chats: list[str] | None = None) -> int:
        """Insert the loaded batch, whose rows have these source ids (and are in these chats,
        if known), no merging (SourceWriter decides that first); returns how many were new
        (in a bulk load, all of them: see deferred_index for a source id loaded twice)."""
        if chats is not None and self._bulk:  # a bulk load: every staged row is inserted
            self.conn.executemany(_ADD_CHAT, ((chat,) for chat in chats))
        else:
            self.conn.execute(_INSERT_CHATS)
        before = self.conn.total_changes
        self.conn.execute(_APPEND_MESSAGES if self._bulk else _INSERT_MESSAGES)
        return self.conn.total_changes - before

    def writer(self, source: str) -> SourceWriter:
        """Where one source's rows go: see SourceWriter."""
        return SourceWriter(self, source)

    def record_ingest(
        self, source: str, kind: str, path: Path, read: int, added: int, skipped: int, merged: int = 0
    ) -> None:
        self.conn.execute(
            "INSERT INTO ingests (source, kind, path, finished_at, read, added, skipped, merged) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (source, kind, str(path), _now(), read, added, skipped, merged),
        )

    # --- reads --------------------------------------------------------------------------

    def stored(self, source: str) -> Stored | None:
        """What this source already stored, or None where nothing. One index descent per chat
        (messages_chat_time, newest first) and one on the rowid: no scan of the messages."""
        if not self.conn.execute("SELECT 1 FROM sources WHERE source = ?", (source,)).fetchone():
            return None
        newest_sql = "SELECT ts_ms FROM messages WHERE chat_id = ? AND source = ? ORDER BY ts_ms DESC LIMIT 1"
        newest = {}
        for (chat,) in self.conn.execute("SELECT id FROM chats").fetchall():
            if row := self.conn.execute(newest_sql, (chat, source)).fetchone():
                newest[chat] = row[0]
        last = self.conn.execute(
            "SELECT source_id, chat_id, ts_ms FROM messages WHERE source = ? ORDER BY id DESC LIMIT 1", (source,)
        ).fetchone()
        return Stored(newest, *last) if last else None

    def account(self) -> Account | None:
        row = self.conn.execute("SELECT wxid, nickname FROM account WHERE id = 1").fetchone()
        return Account(*row) if row else None

    def contact_names(self) -> dict[str, str]:
        """Remark or nickname -> wxid, for exports that name a chat but never give its id (groups win)."""
        rows = self.conn.execute("SELECT wxid, remark, nickname FROM contacts ORDER BY kind = 'group', wxid")
        return {name: wxid for wxid, remark, nickname in rows for name in (nickname, remark) if name}

    def count(self, table: str) -> int:
        if table not in {"messages", "contacts", "chats", "members", "ingests"}:
            raise ValueError(table)
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def count_by(self, table: str, column: str) -> dict[str, int]:
        """Rows per value of one column, largest first (ties by value)."""
        if (table, column) not in _COUNTABLE:
            raise ValueError(f"{table}.{column}")
        return dict(self.conn.execute(f"SELECT {column}, count(*) n FROM {table} GROUP BY 1 ORDER BY n DESC, 1"))

    def type_counts(self) -> list[tuple[int, int, int]]:
        """(base_type, sub_type, messages), most common first."""
        return self.conn.execute(
            "SELECT base_type, sub_type, count(*) n FROM messages GROUP BY 1, 2 ORDER BY n DESC, 1, 2"
        ).fetchall()

    def time_span(self) -> tuple[int | None, int | None, int]:
        """The first and last message's ts_ms (None when empty), and how many messages are the account's own."""
        first, last, own = self.conn.execute(
            "SELECT min(ts_ms), max(ts_ms), coalesce(sum(is_self), 0) FROM messages"
        ).fetchone()
        return first, last, own

    def busiest_chats(self, limit: int) -> list[tuple[str, str, int]]:
        """(chat name, chat kind, messages) of the chats with most messages."""
        return self.conn.execute(
            "SELECT chat_name, chat_kind, count(*) n FROM message_view GROUP BY chat_id ORDER BY n DESC LIMIT ?",
            (limit,),
        ).fetchall()

    def ingest_history(self) -> list[sqlite3.Row]:
        """One row per ingest run, oldest first: source, kind, path, finished_at and its counts."""
        cursor = self.conn.execute(
            "SELECT source, kind, path, finished_at, read, added, merged, skipped FROM ingests ORDER BY id"
        )
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    def contact_rows(self) -> Iterator[tuple[str, str, str, str, str]]:
        """(wxid, remark, nickname, alias, kind) of every contact."""
        yield from self.conn.execute("SELECT wxid, remark, nickname, alias, kind FROM contacts")

    def member_names(self) -> dict[tuple[str, str], str]:
        """(chat id, wxid) -> in-group display name, where the member set one."""
        rows = self.conn.execute("SELECT chat_id, wxid, display_name FROM members WHERE display_name != ''")
        return {(chat, wxid): name for chat, wxid, name in rows}

    def chat_kinds(self) -> dict[str, str]:
        """Chat id -> private | group."""
        return dict(self.conn.execute("SELECT id, kind FROM chats"))

    def dataset_rows(self) -> Iterator[DatasetRow]:
        """Every message as the dataset reads it, chat by chat, oldest first (streamed, never all in memory)."""
        yield from map(DatasetRow._make, self.conn.execute(_DATASET_ROWS))

    def iter_view(self, chat: str | None = None, limit: int | None = None) -> Iterator[sqlite3.Row]:
        """Rendered messages with names resolved, oldest first; `chat` matches id or name."""
        sql, args = "SELECT * FROM message_view", []
        if chat:
            sql += " WHERE chat_id = ? OR chat_name = ?"
            args = [chat, chat]
        sql += " ORDER BY ts_ms, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        cursor = self.conn.execute(sql, args)
        cursor.row_factory = sqlite3.Row
        yield from cursor


class SourceWriter:
    """Writes one source's batches, as one ingest: the only path that merges sources.

    Merge keys that repeat inside the source get their occurrence number (the second "好"
    sent in the same second becomes key#1), so it meets its own twin in another source.
    Once the store holds another source, a row whose message is already there, by server id
    where both have one, else by merge key, is recorded in `merges` instead of inserted.
    Both run as SQL over the staged batch; only the rare repeated keys are numbered in Python.
    """

    def __init__(self, store: Store, source: str) -> None:
        self.store, self.conn, self.source = store, store.conn, source
        self._seen = KeySet()  # every merge key this ingest stored: 8 bytes each
        self._repeats: dict[int, int] = {}
        self._recorded = False  # in `sources`
        others = self.conn.execute("SELECT 1 FROM sources WHERE source != ? LIMIT 1", (source,))
        self.merging = others.fetchone() is not None
        if self.merging:
            store.build_indexes(*MERGE_INDEXES)  # built once, the first time a second source arrives
            for sql in _MERGE_TABLES:
                self.conn.execute(sql)

    def write(self, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Insert rows built by `message_row`; returns (added, merged). The rest were already stored."""
        return self.write_staged(staged(rows), [row[SOURCE_ID] for row in rows], [row[KEY] for row in rows])

    def write_staged(
        self, image: bytes | Path, ids: list[str], keys: list[int], chats: list[str] | None = None
    ) -> tuple[int, int]:
        """Insert a batch from `staged` whose rows have these source ids and merge keys (and
        are in these chats, if known); returns (added, merged)."""
        self.store.load_stage(image)
        self._number(keys)
        merged = self._merge() if self.merging else 0
        added = self.store.insert_staged(ids, chats)
        if added and not self._recorded:
            self.store.add_sources([self.source])
            self._recorded = True
        return added, merged

    def _number(self, keys: list[int]) -> None:
        fresh = set(keys)
        batch = np.fromiter(fresh, dtype=np.int64, count=len(fresh))
        hit = self._seen.found(batch)
        earlier = set(batch[hit].tolist())  # keys an earlier batch already used
        repeated = earlier if len(fresh) == len(keys) else earlier | {k for k, n in Counter(keys).items() if n > 1}
        self._seen.add(batch[~hit])
        if not repeated:  # the usual batch
            return
        first, renumbered = set(), []
        for i, key in enumerate(keys):
            if key not in repeated:
                continue
            if key not in earlier and key not in first:  # its first occurrence keeps the plain key
                first.add(key)
                continue
            n = self._repeats.get(key, 1)
            self._repeats[key] = n + 1
            renumbered.append((hash64(f"{key}#{n}"), i + 1))  # rowid = position + 1
        self.conn.executemany("UPDATE stage.rows SET merge_key = ? WHERE rowid = ?", renumbered)

    def _merge(self) -> int:
        """Record the staged rows another source already stored in `merges` and drop them, with
        the rows this source itself stored before; returns how many were merged."""
        for sql in _MERGE_STEPS:
            self.conn.execute(sql, {"source": self.source})
        return self.conn.execute("SELECT count(*) FROM temp.merged").fetchone()[0]


_MERGE_TABLES = (
    "CREATE TEMP TABLE IF NOT EXISTS claimed (twin INTEGER PRIMARY KEY)",  # twins this ingest merged into
    "DELETE FROM temp.claimed",
    "CREATE TEMP TABLE IF NOT EXISTS merged (seq INTEGER PRIMARY KEY, twin INTEGER NOT NULL, how TEXT NOT NULL)",
)
_MERGE_STEPS = (
    # what this source stored or merged before is neither added nor merged again
    """DELETE FROM stage.rows WHERE
        EXISTS (SELECT 1 FROM main.messages m WHERE m.source = :source AND m.source_id = rows.source_id)
        OR EXISTS (SELECT 1 FROM main.merges g WHERE g.source = :source AND g.source_id = rows.source_id)""",
    "DELETE FROM temp.merged",
    # each row's twin: the oldest message of another source with its server id; else the oldest
    # with its merge key, unless both carry server ids (then they differ). The first row to meet
    # a twin this ingest has not claimed yet is merged; a later one is a message of its own.
    """WITH looked AS MATERIALIZED (
        SELECT r.rowid AS seq, r.server_id AS server,
               (SELECT min(m.id) FROM main.messages m WHERE m.server_id = r.server_id AND m.source != :source)
                   AS by_server,
               (SELECT min(k.id) FROM main.messages k WHERE k.merge_key = r.merge_key AND k.source != :source)
                   AS by_key
        FROM stage.rows r),
    twins AS (
        SELECT seq, iif(by_server IS NULL, 'merge_key', 'server_id') AS how, coalesce(by_server, iif(
            server IS NULL OR (SELECT server_id FROM main.messages WHERE id = by_key) IS NULL, by_key, NULL)) AS twin
        FROM looked)
    INSERT INTO temp.merged (seq, twin, how)
    SELECT seq, twin, how FROM (
        SELECT seq, twin, how, row_number() OVER (PARTITION BY twin ORDER BY seq) AS nth FROM twins WHERE twin NOT NULL)
    WHERE nth = 1 AND twin NOT IN (SELECT twin FROM temp.claimed)""",
    """INSERT INTO main.merges (source, source_id, message_id, matched_on)
    SELECT :source, r.source_id, g.twin, g.how FROM temp.merged g JOIN stage.rows r ON r.rowid = g.seq
    ORDER BY g.seq""",
    "INSERT INTO temp.claimed SELECT twin FROM temp.merged",
    "DELETE FROM stage.rows WHERE rowid IN (SELECT seq FROM temp.merged)",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
