"""`dataset --as CONTACT`: the store seen from one contact's side, for the who-said-it control.

Their messages become "yours" (the replies a sample learns) and yours become a friend's lines,
in every chat they speak in; names, PII and the rest go through the dataset build unchanged. The
dataset lands in a workspace of its own, WORKSPACE/as/<CONTACT>/, so yours is never touched, and
eval's who-said-it discriminator (trained on your replies) reports how much of that other person's
held-out replies it takes for yours: a measure that separates two people says little.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from wechat_avatar.canonical import Account
from wechat_avatar.errors import UsageError
from wechat_avatar.store import DatasetRow, Store
from wechat_avatar.workspace import Workspace

_FOLDER = re.compile(r"[\w.-]{1,64}")


class AsContact:
    """A read-only stand-in for Store with `contact` as the account (what build_dataset reads)."""

    def __init__(self, store: Store, contact: str) -> None:
        self.store = store
        found = {wxid: (remark or nickname or wxid) for wxid, remark, nickname, _, kind in store.contact_rows()
                 if kind not in ("self", "group", "official", "system")}  # fmt: skip
        wxid = contact if contact in found else next((w for w, name in found.items() if name == contact), None)
        if wxid is None:
            raise UsageError(
                f"no contact {contact!r} in {store.path}",
                hint="pass a friend's wxid, remark or nickname as `wechat-avatar view` shows it",
            )
        self.wxid, self.name = wxid, found[wxid]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)  # everything else: the store itself

    def account(self) -> Account:
        return Account(self.wxid, self.name)

    def dataset_rows(self) -> Iterator[DatasetRow]:
        for row in self.store.dataset_rows():
            yield row._replace(is_self=int(row.sender == self.wxid))


def contact_workspace(workspace: Workspace, contact: str) -> Workspace:
    """WORKSPACE/as/<CONTACT>: the name as given where it makes a folder name, else a short hash of it."""
    folder = contact if _FOLDER.fullmatch(contact) else hashlib.sha256(contact.encode()).hexdigest()[:12]
    return Workspace(workspace.others / folder)
