"""Who a friend is: a name or wxid a client sends, matched against the store's contacts.

"wxid_hu", "胡三行" (a remark) or "Hu" (a nickname) all become ("wxid_hu", "胡三行"): the history key
and the name the prompt shows, with the dataset's precedence (remark, nickname, alias, wxid).
A friend who is no contact is known by what the client sent.

The web page's "who are you" list (`listed`) shows display names only, never a wxid, and only
names the dataset's pseudonymiser leaves as they are: a remark holding a phone number, or a
contact known by nothing but its wxid, stays off a page that every visitor sees.
"""

from __future__ import annotations

from typing import NamedTuple

from wechat_avatar.config import PiiCues
from wechat_avatar.dataset.pii import Pseudonymiser
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace

BUSIEST = 12  # contacts the page offers before the friends who already talked to the server


class Listed(NamedTuple):
    name: str  # what the page shows and sends back (it resolves to the same friend)
    contact: bool  # one of the store's busiest contacts
    kept: int  # messages the server keeps of this friend


class Friends:
    def __init__(self, contacts: dict[str, tuple[str, str]], busiest: list[str] | None = None,
                 cues: PiiCues | None = None) -> None:  # fmt: skip
        self.contacts = contacts  # wxid, remark, nickname or alias -> (wxid, display name)
        self.busiest = busiest or []  # display names of the busiest private chats with friends, busiest first
        self._pseudo = Pseudonymiser(cues)

    @classmethod
    def of(cls, workspace: Workspace, cues: PiiCues | None = None, busiest: int = BUSIEST) -> Friends:
        """The store's contacts other than groups and yourself (none when there is no chat.db yet)."""
        if not workspace.store.is_file():
            return cls({}, [], cues)
        contacts: dict[str, tuple[str, str]] = {}
        kinds: dict[str, str] = {}
        with Store.open(workspace, create=False) as store:
            for wxid, remark, nickname, alias, kind in store.contact_rows():
                if kind in ("group", "self"):
                    continue
                known, kinds[wxid] = (wxid, remark or nickname or alias or wxid), kind
                for key in (alias, nickname, remark, wxid):  # later keys win: a wxid always names its own contact
                    if key:
                        contacts[key] = known
            # chats, not contacts, are what the store counts; official accounts and strangers are no friends
            chats = store.busiest_chats(busiest * 4)
        names = [contacts[chat][1] for chat, kind, _ in chats
                 if kind == "private" and chat in contacts and kinds[contacts[chat][0]] == "friend"]  # fmt: skip
        return cls(contacts, names[:busiest], cues)

    def resolve(self, friend: str) -> tuple[str, str]:
        """(history key, display name)."""
        friend = friend.strip()
        return self.contacts.get(friend, (friend, friend))

    def listed(self, kept: list[tuple[str, int]]) -> list[Listed]:
        """The busiest contacts, then the other friends the server keeps history of (`kept`: history
        key and message count, most recent first), each once, by a name that is safe to show."""
        counts: dict[str, int] = {}
        for key, n in kept:
            counts.setdefault(self.resolve(key)[1], n)  # by the key's display name, most recent first
        names = [*self.busiest, *(name for name in counts if name not in self.busiest)]
        return [Listed(name, name in self.busiest, counts.get(name, 0)) for name in names if self._safe(name)]

    def _safe(self, name: str) -> bool:
        """Not a contact's bare wxid (one with no remark or nickname), nothing the dataset would pseudonymise."""
        return self.contacts.get(name, ("",))[0] != name and self._pseudo(name) == name
