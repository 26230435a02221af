"""The canonical store: migrations, idempotent upserts, one account, all-or-nothing writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message
from wechat_avatar.errors import UsageError, WorkspaceError
from wechat_avatar.render import Rendered
from wechat_avatar.store import MIGRATIONS, Store


def msg(i: int, chat: str = "wxid_hu", sender: str = "wxid_hu", text: str = "hi") -> tuple[Message, Rendered]:
    m = Message("android:wxid_me", str(i), chat, sender, sender == "wxid_me", 1_700_000_000_000 + i, 1, 0, text)
    return m, Rendered(text=text, category="text", status="ok", sub_type=0)


def test_schema_is_migrated_once_and_recorded(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.schema_version == MIGRATIONS[-1][0]
    with Store.open(tmp_path) as store:
        rows = store.conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(v, n) for v, n, _ in MIGRATIONS]


def test_store_opens_in_any_sqlite_tool(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_account(Account("wxid_me", "乌冬面"))
        store.insert_messages([msg(1)])
    conn = sqlite3.connect(tmp_path / "chat.db")
    assert conn.execute("SELECT chat_kind, sender_name, text FROM message_view").fetchall() == [
        ("private", "wxid_hu", "hi")
    ]


def test_reinserting_adds_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.insert_messages([msg(1), msg(2)]) == 2
        assert store.insert_messages([msg(2), msg(3)]) == 1
        assert store.count("messages") == 3 and store.count("chats") == 1


def test_contacts_merge_without_blanking_known_fields(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.upsert_contacts([Contact("wxid_a", nickname="A", kind=ContactKind.STRANGER)])
        store.upsert_contacts([Contact("wxid_a", remark="阿A", kind=ContactKind.FRIEND)])
        store.upsert_members([Member("1@chatroom", "wxid_a", "群名A")])
        store.upsert_members([Member("1@chatroom", "wxid_a", "")])
        contact = store.conn.execute("SELECT nickname, remark, kind FROM contacts").fetchone()
        member = store.conn.execute("SELECT display_name FROM members").fetchone()
    assert contact == ("A", "阿A", "friend") and member == ("群名A",)


def test_group_sender_name_prefers_group_nickname(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_account(Account("wxid_me", "乌冬面"))
        store.upsert_contacts([Contact("wxid_a", nickname="A", remark="同事A"), Contact("wxid_b", nickname="B"),
                               Contact("1@chatroom", nickname="开黑群", kind=ContactKind.GROUP)])  # fmt: skip
        store.upsert_members([Member("1@chatroom", "wxid_a", "群里的A")])
        store.insert_messages([msg(1, "1@chatroom", "wxid_a"), msg(2, "1@chatroom", "wxid_b"),
                               msg(3, "1@chatroom", "wxid_me")])  # fmt: skip
        names = [(r["chat_name"], r["sender_name"]) for r in store.iter_view()]
        assert [r["text"] for r in store.iter_view(chat="开黑群", limit=1)] == ["hi"]
    assert names == [("开黑群", "群里的A"), ("开黑群", "B"), ("开黑群", "乌冬面")]


def test_one_account_per_workspace(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_account(Account("wxid_me", "乌冬面"))
        store.set_account(Account("wxid_me", ""))  # same account again: fine, nickname kept
        with pytest.raises(WorkspaceError, match="wxid_me's history"):
            store.set_account(Account("wxid_other"))
        assert store.account() == Account("wxid_me", "乌冬面")


def test_failed_transaction_leaves_store_unchanged(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.insert_messages([msg(1)])
        with pytest.raises(RuntimeError), store.transaction():
            store.insert_messages([msg(2), msg(3)])
            raise RuntimeError("source broke half-way")
        assert store.count("messages") == 1


def test_missing_store_and_unusable_workspace(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no chat store"):
        Store.open(tmp_path / "nothing", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="cannot use workspace"):
        Store.open(tmp_path / "file" / "ws")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "chat.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError):
        Store.open(tmp_path / "junk")
