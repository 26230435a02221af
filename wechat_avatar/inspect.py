"""Read-only views of the store for people: message JSON lines and the summary."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from wechat_avatar.store import Store


def message_json(row: sqlite3.Row, tz: ZoneInfo) -> dict[str, Any]:
    """The `messages` output: the issue's fields first, our extras after."""
    return {
        "chat": row["chat_name"],
        "chat_kind": row["chat_kind"],
        "sender": row["sender"],
        "sender_name": row["sender_name"],
        "is_self": bool(row["is_self"]),
        "time": datetime.fromtimestamp(row["ts_ms"] / 1000, tz).isoformat(timespec="seconds"),
        "type": row["base_type"],
        "subtype": row["sub_type"],
        "text": row["text"],
        "chat_id": row["chat_id"],
        "category": row["category"],
        "status": row["render_status"],
    }


def store_stats(store: Store, tz: ZoneInfo) -> dict[str, Any]:
    """Everything `wechat-avatar stats` shows, as plain data (also printed with --json)."""
    account = store.account()
    first, last, own = store.conn.execute(
        "SELECT min(ts_ms), max(ts_ms), coalesce(sum(is_self), 0) FROM messages"
    ).fetchone()

    def when(ms: int | None) -> str | None:
        return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds") if ms is not None else None

    return {
        "account": {"wxid": account.wxid, "nickname": account.nickname} if account else None,
        "schema_version": store.schema_version,
        "messages": store.count("messages"),
        "own_messages": own,
        "first": when(first),
        "last": when(last),
        "chats": dict(store.grouped("SELECT kind, count(*) FROM chats GROUP BY kind ORDER BY kind")),
        "contacts": dict(store.grouped("SELECT kind, count(*) FROM contacts GROUP BY kind ORDER BY kind")),
        "by_category": dict(
            store.grouped("SELECT category, count(*) n FROM messages GROUP BY category ORDER BY n DESC")
        ),
        "by_status": dict(
            store.grouped("SELECT render_status, count(*) n FROM messages GROUP BY render_status ORDER BY n DESC")
        ),
        "by_type": [
            {"type": t, "subtype": s, "count": n}
            for t, s, n in store.grouped(
                "SELECT base_type, sub_type, count(*) n FROM messages GROUP BY 1, 2 ORDER BY n DESC"
            )
        ],
        "top_chats": [
            {"chat": name, "kind": kind, "messages": n}
            for name, kind, n in store.grouped(
                "SELECT chat_name, chat_kind, count(*) n FROM message_view GROUP BY chat_id ORDER BY n DESC LIMIT 10"
            )
        ],
        "ingests": [
            {"source": s, "kind": k, "path": p, "finished_at": f, "read": r, "added": a, "merged": m, "skipped": sk}
            for s, k, p, f, r, a, m, sk in store.grouped(
                "SELECT source, kind, path, finished_at, read, added, merged, skipped FROM ingests ORDER BY id"
            )
        ],
    }
