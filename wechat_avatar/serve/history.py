"""Each friend's conversation with the served avatar, kept in WORKSPACE/serve/state.db.

One row per message (a friend's line or one bubble of the avatar's), oldest first per friend:

    friend        is_self  name     text        ts_ms
    wxid_hu       0        胡三行    在吗         1764786000000
    wxid_hu       1        乌冬面    在<s>咋了   -> stored as two rows, "在" and "咋了"

`friend` is the key the API resolved (a contact's wxid, else what the client sent). The file
survives restarts; only the newest `keep` messages of a friend are kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wechat_avatar.dataset.window import Line

MIGRATIONS = [  # (name, SQL), applied once each, in order, recorded in the migrations table
    ("001_messages", """
        CREATE TABLE messages (
            id      INTEGER PRIMARY KEY,
            friend  TEXT NOT NULL,
            is_self INTEGER NOT NULL,
            name    TEXT NOT NULL,
            text    TEXT NOT NULL,
            ts_ms   INTEGER NOT NULL
        );
        CREATE INDEX messages_friend ON messages (friend, id);
    """),
]  # fmt: skip


class History:
    def __init__(self, path: Path, keep: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # one connection, used from the server's event loop thread only; writes are tiny
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.keep = keep
        self._migrate()

    def _migrate(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {name for (name,) in self.conn.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            self.conn.execute("BEGIN")
            for statement in filter(str.strip, sql.split(";")):
                self.conn.execute(statement)
            self.conn.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (name,))
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def lines(self, friend: str) -> list[Line]:
        rows = self.conn.execute(
            "SELECT id, is_self, name, text, ts_ms FROM messages WHERE friend = ? ORDER BY id", (friend,)
        )
        return [Line(id_, bool(is_self), name, text, "text", ts) for id_, is_self, name, text, ts in rows]

    def add(self, friend: str, lines: list[Line]) -> None:
        """Append messages and drop the oldest beyond `keep`, in one transaction."""
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO messages (friend, is_self, name, text, ts_ms) VALUES (?, ?, ?, ?, ?)",
            [(friend, int(line.is_self), line.name, line.text, line.ts_ms) for line in lines],
        )
        self.conn.execute(
            "DELETE FROM messages WHERE friend = ?1 AND id NOT IN "
            "(SELECT id FROM messages WHERE friend = ?1 ORDER BY id DESC LIMIT ?2)",
            (friend, self.keep),
        )
        self.conn.execute("COMMIT")

    def friends(self) -> list[tuple[str, int]]:
        """(friend, messages kept) of every friend with history, the most recently heard first."""
        return self.conn.execute(
            "SELECT friend, count(*) FROM messages GROUP BY friend ORDER BY max(id) DESC"
        ).fetchall()

    def clear(self, friend: str) -> int:
        return self.conn.execute("DELETE FROM messages WHERE friend = ?", (friend,)).rowcount
