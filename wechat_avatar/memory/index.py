"""WORKSPACE/memory/index.db: your exchanges, their sessions, and a full-text index over them.

exchanges      id (your reply's first message id), chat_id, friend, said, reply, ts_ms
exchange_words FTS5 over jieba words of said + reply; rowid = exchanges.id
sessions       (chat_id, start_ms, key): the dataset's sessions, so eval and dataset samples
               can ask for memories from before their own session
chats          chat_id -> a signature of its messages when it was indexed: an incremental
               build re-cuts only the chats whose signature changed
settings       what the index was cut with (a change there rebuilds it)
"""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

from wechat_avatar.memory import words
from wechat_avatar.memory.exchanges import ChatMemory, Exchange

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chats (chat_id TEXT PRIMARY KEY, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exchanges (id INTEGER PRIMARY KEY, chat_id TEXT NOT NULL, friend TEXT NOT NULL,
    said TEXT NOT NULL, reply TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS exchanges_chat ON exchanges (chat_id);
CREATE TABLE IF NOT EXISTS sessions (chat_id TEXT NOT NULL, start_ms INTEGER NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (chat_id, start_ms)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_key ON sessions (key);
CREATE VIRTUAL TABLE IF NOT EXISTS exchange_words USING fts5(words);
CREATE VIRTUAL TABLE IF NOT EXISTS temp.exchange_vocab USING fts5vocab(main, exchange_words, 'row');
"""
_MATCHES = """SELECT e.id, e.chat_id, e.friend, e.said, e.reply, e.ts_ms, bm25(exchange_words)
FROM exchange_words JOIN exchanges e ON e.id = exchange_words.rowid
WHERE exchange_words MATCH ? AND e.ts_ms < ? {friend} ORDER BY bm25(exchange_words) LIMIT ?"""


# One pass ranks by the final weight: BM25 (negative: lower is better) times the same friend's boost, halved
# every half-life of age. Scoring is the cost of a lookup (every matching exchange is scored), so it is
# done once, not once for the friend's and once for everyone's.
_RANKED = """SELECT e.id, e.chat_id, e.friend, e.said, e.reply, e.ts_ms, bm25(exchange_words)
* (CASE WHEN e.friend = ? THEN ? ELSE 1.0 END) * pow(0.5, (? - e.ts_ms) / ?) AS weight
FROM exchange_words JOIN exchanges e ON e.id = exchange_words.rowid
WHERE exchange_words MATCH ? AND e.ts_ms < ? ORDER BY weight LIMIT ?"""
_IN_SESSION = """SELECT e.id FROM sessions s JOIN exchanges e ON e.chat_id = s.chat_id AND e.ts_ms >= s.start_ms
AND e.ts_ms < COALESCE((SELECT MIN(n.start_ms) FROM sessions n WHERE n.chat_id = s.chat_id
AND n.start_ms > s.start_ms), 9223372036854775807) WHERE s.key = ?"""
_SIGNED = "INSERT INTO chats VALUES (?, ?) ON CONFLICT (chat_id) DO UPDATE SET signature = excluded.signature"


class Match(NamedTuple):
    exchange: Exchange
    relevance: float  # BM25, higher is better


class MemoryIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # serve asks from its request threads; one lock keeps them off the connection at the same moment
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(SCHEMA)
        try:
            self.conn.execute("SELECT pow(0.5, 1)")
        except sqlite3.OperationalError:  # an SQLite built without its math functions
            self.conn.create_function("pow", 2, math.pow, deterministic=True)
        self.lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    # --- building -------------------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM settings"))

    def signatures(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT chat_id, signature FROM chats"))

    def reset(self, settings: dict[str, str]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            for table in ("chats", "exchanges", "sessions", "exchange_words", "settings"):
                self.conn.execute(f"DELETE FROM {table}")
            self.conn.executemany("INSERT INTO settings VALUES (?, ?)", settings.items())

    def replace_chat(self, chat_id: str, signature: str, memory: ChatMemory | None) -> None:
        """Forget what the chat held and store what it holds now, in one transaction."""
        c = self.conn
        c.execute("BEGIN")
        try:
            old = [row[0] for row in c.execute("SELECT id FROM exchanges WHERE chat_id = ?", (chat_id,))]
            c.executemany("DELETE FROM exchange_words WHERE rowid = ?", [(i,) for i in old])
            c.execute("DELETE FROM exchanges WHERE chat_id = ?", (chat_id,))
            c.execute("DELETE FROM sessions WHERE chat_id = ?", (chat_id,))
            if memory is not None:
                c.executemany("INSERT INTO exchanges VALUES (?, ?, ?, ?, ?, ?)", memory.exchanges)
                c.executemany("INSERT INTO exchange_words (rowid, words) VALUES (?, ?)",
                              [(e.id, words.indexed(f"{e.said} {e.reply}")) for e in memory.exchanges])  # fmt: skip
                c.executemany("INSERT INTO sessions VALUES (?, ?, ?)", memory.sessions)
            c.execute(_SIGNED, (chat_id, signature))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def forget_chats(self, chat_ids: list[str]) -> None:
        for chat_id in chat_ids:  # gone from the store (a rebuilt chat.db): gone from memory
            self.replace_chat(chat_id, "", None)
            self.conn.execute("DELETE FROM chats WHERE chat_id = ?", (chat_id,))

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]

    # --- reading --------------------------------------------------------------------------------------------

    def matches(self, query: str, before_ms: int, limit: int, friend: str | None = None) -> list[Match]:
        """The best full-text matches older than `before_ms` (`friend`: only theirs)."""
        if not query:
            return []
        sql = _MATCHES.format(friend="AND e.friend = ?" if friend is not None else "")
        args = (query, before_ms, friend, limit) if friend is not None else (query, before_ms, limit)
        with self.lock:
            rows = self.conn.execute(sql, args).fetchall()
        return [Match(Exchange(*row[:6]), -row[6]) for row in rows]

    def rarest(self, terms: list[str], postings: int) -> list[str]:
        """The rarest of `terms` (fewest exchanges hold them) while together they match at most `postings`
        exchanges. BM25 scores every exchange a term matches before it ranks, so a common word (吃, 好)
        in a large index costs a lookup hundreds of milliseconds and adds next to nothing to the ranking
        (its IDF is near zero); a query of such words alone asks for nothing. In an index of fewer
        exchanges than `postings` nothing is ever dropped. Terms no exchange holds are dropped too."""
        if not terms:
            return []
        marks = ", ".join("?" * len(terms))
        with self.lock:
            docs = dict(self.conn.execute(f"SELECT term, doc FROM exchange_vocab WHERE term IN ({marks})", terms))
        out, total = [], 0
        for term in sorted(docs, key=lambda t: (docs[t], terms.index(t))):
            if total + docs[term] > postings:
                break
            out.append(term)
            total += docs[term]
        return out

    def ranked(
        self, query: str, before_ms: int, friend: str, boost: float, half_life_ms: float, limit: int
    ) -> list[Match]:
        """The `limit` best matches older than `before_ms` by relevance, friend and age (relevance: the weight)."""
        if not query:
            return []
        args = (friend, boost, before_ms, half_life_ms, query, before_ms, limit)
        with self.lock:
            rows = self.conn.execute(_RANKED, args).fetchall()
        return [Match(Exchange(*row[:6]), -row[6]) for row in rows]

    def session_start(self, key: str) -> int | None:
        """When the dataset's session `key` (meta.jsonl's "session") began."""
        with self.lock:
            row = self.conn.execute("SELECT start_ms FROM sessions WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def session_exchanges(self, keys: set[str]) -> set[int]:
        """The ids of the exchanges inside the dataset's sessions `keys` (up to the chat's next session)."""
        out: set[int] = set()
        with self.lock:
            for key in keys:
                out.update(row[0] for row in self.conn.execute(_IN_SESSION, (key,)))
        return out
