"""Who a friend is: a name or wxid a client sends, matched against the store's contacts.

"wxid_hu", "胡三行" (a remark) or "Hu" (a nickname) all become ("wxid_hu", "胡三行"): the history key
and the name the prompt shows, with the dataset's precedence (remark, nickname, alias, wxid).
A friend who is no contact is known by what the client sent.
"""

from __future__ import annotations

from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace


class Friends:
    def __init__(self, contacts: dict[str, tuple[str, str]]) -> None:
        self.contacts = contacts  # wxid, remark, nickname or alias -> (wxid, display name)

    @classmethod
    def of(cls, workspace: Workspace) -> Friends:
        """The store's contacts other than groups and yourself (none when there is no chat.db yet)."""
        if not workspace.store.is_file():
            return cls({})
        contacts: dict[str, tuple[str, str]] = {}
        with Store.open(workspace, create=False) as store:
            for wxid, remark, nickname, alias, kind in store.contact_rows():
                if kind in ("group", "self"):
                    continue
                known = (wxid, remark or nickname or alias or wxid)
                for key in (alias, nickname, remark, wxid):  # later keys win: a wxid always names its own contact
                    if key:
                        contacts[key] = known
        return cls(contacts)

    def resolve(self, friend: str) -> tuple[str, str]:
        """(history key, display name)."""
        friend = friend.strip()
        return self.contacts.get(friend, (friend, friend))
