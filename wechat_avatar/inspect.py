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
    first, last, own = store.time_span()

    def when(ms: int | None) -> str | None:
        return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds") if ms is not None else None

    return {
        "account": {"wxid": account.wxid, "nickname": account.nickname} if account else None,
        "schema_version": store.schema_version,
        "messages": store.count("messages"),
        "own_messages": own,
        "first": when(first),
        "last": when(last),
        "chats": dict(sorted(store.count_by("chats", "kind").items())),
        "contacts": dict(sorted(store.count_by("contacts", "kind").items())),
        "by_category": store.count_by("messages", "category"),
        "by_status": store.count_by("messages", "render_status"),
        "by_type": [{"type": t, "subtype": s, "count": n} for t, s, n in store.type_counts()],
        "top_chats": [{"chat": name, "kind": kind, "messages": n} for name, kind, n in store.busiest_chats(10)],
        "ingests": [dict(row) for row in store.ingest_history()],
    }
