"""Write the synthetic history as MemoTrace / WeChatMsg CSV exports (reference §5.1).

    聊天记录/<remark>/<remark>_utf8.csv     one per chat, UTF-8 with BOM

The first nine columns are the PC 3.x MSG row as WeChatMsg reads it (StrContent raw, so
empty for every type-49 message, whose XML is in the CompressContent it leaves out); the
last three name the sender (in a private chat: you or the contact). No column holds the
chat's own id:

    MSG(localId=406, TalkerId=3, Type=1, SubType=0, IsSender=0, CreateTime=1687360045, StrContent="好")
    -> 406,3,1,0,0,1687360045,4,好,2023-06-21 23:07:25,胡三行,Hu,wxid_hu
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from wechat_avatar.synth.history import Event
from wechat_avatar.synth.pc import SYSTEM_TYPES, display, local_time, names
from wechat_avatar.synth.pc3 import msg_row, numbered
from wechat_avatar.synth.persona import Cast

HEADER = ("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
          "Remark", "NickName", "Sender")  # fmt: skip


def write_memotrace(out: Path, cast: Cast, events: Iterable[Event], n: int) -> Path:
    root = out / "聊天记录"
    known = names(cast)
    files: dict[str, tuple[IO[str], Any]] = {}
    try:
        for _, local_id, talker_id, event in numbered(events, n):
            if event.talker not in files:
                folder = root / display(known, event.talker)
                folder.mkdir(parents=True, exist_ok=True)
                fh = (folder / f"{folder.name}_utf8.csv").open("w", encoding="utf-8-sig", newline="")
                files[event.talker] = (fh, csv.writer(fh))
                files[event.talker][1].writerow(HEADER)
            files[event.talker][1].writerow(memotrace_row(event, local_id, talker_id, cast, known))
    finally:
        for fh, _ in files.values():
            fh.close()
    return root


def memotrace_row(e: Event, local_id: int, talker_id: int, cast: Cast, known: dict[str, tuple[str, str, str]]) -> tuple:
    _, _, base, sub, is_send, created, _, status, _, content, *_ = msg_row(e, talker_id)
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if e.is_send:
        who = (cast.me.nickname, cast.me.nickname, cast.me.wxid)  # Me(): its remark is its nickname
    elif e.member_count and base in SYSTEM_TYPES:
        who = ("", "", "")  # WeChat's own lines have no sender in BytesExtra
    else:
        wxid = e.sender if e.member_count else e.talker
        remark, nickname, _ = known.get(wxid, ("", wxid, ""))
        who = (remark or nickname, nickname, wxid)
    return (local_id, talker_id, base, sub, is_send, created, status, content, local_time(e.created_ms), *who)
