"""Display names, resolved once per chat and sender instead of with a join per message.

The precedence is message_view's (store.py): a group member's in-group name, then the
contact's remark, nickname, alias, and the wxid last. test_dataset checks the two agree.
"""

from __future__ import annotations

from typing import NamedTuple

from wechat_avatar.store import Store


class ChatInfo(NamedTuple):
    kind: str  # private | group
    name: str
    contact_kind: str  # the chat's own contact kind (official, system, …) or ""


class Names:
    def __init__(self, store: Store) -> None:
        self.contacts: dict[str, tuple[str, str, str, str]] = {
            wxid: (remark, nickname, alias, kind) for wxid, remark, nickname, alias, kind in store.contact_rows()
        }
        self.members = store.member_names()
        account = store.account()
        self.self_name = (account.nickname or account.wxid) if account else ""
        self.chat_kinds = store.chat_kinds()

    def chat(self, chat_id: str) -> ChatInfo:
        remark, nickname, _, kind = self.contacts.get(chat_id, ("", "", "", ""))
        return ChatInfo(self.chat_kinds.get(chat_id, "private"), remark or nickname or chat_id, kind)

    def sender(self, chat_id: str, sender: str, is_self: bool) -> str:
        if is_self:
            return self.self_name or sender
        if name := self.members.get((chat_id, sender)):
            return name
        remark, nickname, alias, _ = self.contacts.get(sender, ("", "", "", ""))
        return remark or nickname or alias or sender
