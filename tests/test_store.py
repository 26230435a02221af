"""The canonical store: migrations, idempotent upserts, one account, all-or-nothing writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wechat_avatar.canonical import Account, Contact, ContactKind, Member, Message
from wechat_avatar.errors import UsageError, WorkspaceError
from wechat_avatar.render import Rendered
from wechat_avatar.staging import MESSAGE_COLUMNS, merge_key, message_row
from wechat_avatar.store import MIGRATIONS, Store
from wechat_avatar.workspace import Workspace


def msg(i: int, chat: str = "wxid_hu", sender: str = "wxid_hu", text: str = "hi") -> tuple[Message, Rendered]:
    m = Message("android:wxid_me", str(i), chat, sender, sender == "wxid_me", 1_700_000_000_000 + i, 1, 0, text)
    return m, Rendered(text=text, category="text", status="ok", sub_type=0)


def test_schema_is_migrated_once_and_recorded(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
        assert store.schema_version == MIGRATIONS[-1][0]
    with Store.open(Workspace(tmp_path)) as store:
        rows = store.conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(v, n) for v, n, _ in MIGRATIONS]


def test_a_store_of_schema_2_keeps_every_row_through_migrations_3_and_4(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
    old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT)")
    for version, name, sql in MIGRATIONS[:2]:
        old.executescript(sql)
        old.execute("INSERT INTO schema_migrations VALUES (?, ?, '')", (version, name))
    old.execute("INSERT INTO chats VALUES ('wxid_hu', 'private')")
    rows = [row("android:me", "1", "好", 100, 11), row("android:me", "2", "在吗", 101)]
    old.executemany(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 17)})", rows)
    old.execute("INSERT INTO merges VALUES ('pc3:me', 'MSG0:1', 1, 'server_id')")
    before = old.execute("SELECT * FROM messages ORDER BY id").fetchall()
    old.close()
    with Store.open(Workspace(tmp_path)) as store:
        assert store.conn.execute("SELECT * FROM messages ORDER BY id").fetchall() == before
        assert store.conn.execute("SELECT text FROM message_view ORDER BY id").fetchall() == [("好",), ("在吗",)]
        assert not store.conn.execute("PRAGMA foreign_key_check").fetchall()
        with pytest.raises(sqlite3.IntegrityError):  # (source, source_id) is still unique
            store.conn.execute(f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT {MESSAGE_COLUMNS} FROM messages")
        index = store.conn.execute("PRAGMA index_info(messages_source_id)").fetchall()
        assert [name for _, _, name in index] == ["source_id", "source"]
        assert store.conn.execute("SELECT source FROM sources").fetchall() == [("android:me",)]
        assert store.writer("pc3:me").write([row("pc3:me", "MSG0:1", "好", 100, 11)]) == (0, 0)


def test_store_opens_in_any_sqlite_tool(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
        store.set_account(Account("wxid_me", "乌冬面"))
        store.insert_messages([msg(1)])
    conn = sqlite3.connect(tmp_path / "chat.db")
    assert conn.execute("SELECT chat_kind, sender_name, text FROM message_view").fetchall() == [
        ("private", "wxid_hu", "hi")
    ]


def test_reinserting_adds_nothing(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
        assert store.insert_messages([msg(1), msg(2)]) == 2
        assert store.insert_messages([msg(2), msg(3)]) == 1
        assert store.count("messages") == 3 and store.count("chats") == 1


def test_contacts_merge_without_blanking_known_fields(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
        store.upsert_contacts([Contact("wxid_a", nickname="A", kind=ContactKind.STRANGER)])
        store.upsert_contacts([Contact("wxid_a", remark="阿A", kind=ContactKind.FRIEND)])
        store.upsert_members([Member("1@chatroom", "wxid_a", "群名A")])
        store.upsert_members([Member("1@chatroom", "wxid_a", "")])
        contact = store.conn.execute("SELECT nickname, remark, kind FROM contacts").fetchone()
        member = store.conn.execute("SELECT display_name FROM members").fetchone()
    assert contact == ("A", "阿A", "friend") and member == ("群名A",)


def test_group_sender_name_prefers_group_nickname(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
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
    with Store.open(Workspace(tmp_path)) as store:
        store.set_account(Account("wxid_me", "乌冬面"))
        store.set_account(Account("wxid_me", ""))  # same account again: fine, nickname kept
        with pytest.raises(WorkspaceError, match="wxid_me's history"):
            store.set_account(Account("wxid_other"))
        assert store.account() == Account("wxid_me", "乌冬面")


def test_failed_transaction_leaves_store_unchanged(tmp_path: Path) -> None:
    with Store.open(Workspace(tmp_path)) as store:
        store.insert_messages([msg(1)])
        with pytest.raises(RuntimeError), store.transaction():
            store.insert_messages([msg(2), msg(3)])
            raise RuntimeError("source broke half-way")
        assert store.count("messages") == 1


def test_missing_store_and_unusable_workspace(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no chat store"):
        Store.open(Workspace(tmp_path / "nothing"), create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="cannot use workspace"):
        Store.open(Workspace(tmp_path / "file" / "ws"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "chat.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(WorkspaceError):
        Store.open(Workspace(tmp_path / "junk"))


def row(source: str, sid: str, text: str, second: int, server: int | None = None, base: int = 1) -> tuple:
    m = Message(source, sid, "wxid_hu", "wxid_hu", False, second * 1000 + 123, base, 0, text, None, server)
    return message_row(m, Rendered(text=text, category="text", status="ok", sub_type=0))


def test_a_second_source_merges_on_server_id_then_merge_key(tmp_path: Path) -> None:
    phone = [row("android:me", "1", "好", 100, 11), row("android:me", "2", "好", 100, 12),
             row("android:me", "3", "在吗", 101, 13), row("android:me", "4", "[图片]", 102, 14, base=3)]  # fmt: skip
    pc = [row("pc3:me", "MSG0:1", "好", 100, 11), row("pc3:me", "MSG0:2", "好", 100, 12),
          row("pc3:me", "MSG0:3", "在吗", 101, 99),  # same words and second, another server id: a new message
          row("pc3:me", "MSG0:4", "图片", 102, 14, base=3), row("pc3:me", "MSG0:5", "新的", 103)]  # fmt: skip
    export = [row("memotrace:me", f"c:{i}", text, second) for i, (text, second) in
              enumerate([("好", 100), ("好", 100), ("好", 100), ("在吗", 101), ("新的", 103)])]  # fmt: skip
    with Store.open(Workspace(tmp_path)) as store:
        first = store.writer("android:me")
        assert not first.merging and first.write(phone) == (4, 0)
        assert store.writer("pc3:me").write(pc) == (2, 3)  # 1, 2 and 4 by server id
        # no server ids: "好" #0 and #1 meet their twins, the third "好" is new; "在吗" matches the
        # phone's (which has a server id) while the PC's differs; "新的" matches the PC's
        assert store.writer("memotrace:me").write(export) == (1, 4)
        merged = store.conn.execute("SELECT source, source_id, matched_on FROM merges ORDER BY rowid").fetchall()
        assert [(s, how) for s, _, how in merged] == [("pc3:me", "server_id")] * 3 + [("memotrace:me", "merge_key")] * 4
        assert store.writer("pc3:me").write(pc) == (0, 0)  # again: everything already stored
        assert store.writer("memotrace:me").write(export) == (0, 0)
        texts = store.conn.execute("SELECT source, text FROM messages ORDER BY id").fetchall()
    assert texts == [("android:me", "好"), ("android:me", "好"), ("android:me", "在吗"), ("android:me", "[图片]"),
                     ("pc3:me", "在吗"), ("pc3:me", "新的"), ("memotrace:me", "好")]  # fmt: skip


def test_merge_keys_fold_whitespace_and_ignore_milliseconds() -> None:
    base = Message("a", "1", "c", "s", False, 1_700_000_000_123, 1, 0, "hello  world\n", None, None)
    assert merge_key(base) == merge_key(
        base._replace(source="b", timestamp_ms=1_700_000_000_999, content="hello world")
    )
    assert merge_key(base) != merge_key(base._replace(timestamp_ms=1_700_000_001_000))
    assert merge_key(base) != merge_key(base._replace(sender="t"))
    image = base._replace(base_type=3, content="<msg><img md5='a'/></msg>")
    assert merge_key(image) == merge_key(image._replace(content="图片")) != merge_key(base)
