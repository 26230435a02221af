"""Text exports as they reach us in real life: re-saved by a spreadsheet (BOM, CRLF, times like
`2024/5/3 9:05`), older layouts, quotes that lost their tail, pages that cannot be read.

Each runs the real CLI and compares whole stored rows (issue 15, sections 4 and 5).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_bad_input import fails

from wechat_avatar.errors import UsageError
from wechat_avatar.sources.base import Hints, resolve_self

ME, HU, ROOM = "wxid_me", "wxid_hu", "123@chatroom"
PYWXDUMP = ["id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime"]
MEMO_ALL = ["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime"]
MEMO = [*MEMO_ALL, "Remark", "NickName", "Sender"]
CHATLOG = ["Time", "SenderName", "Sender", "TalkerName", "Talker", "Content"]
COLUMNS = ("source, source_id, server_id, chat_id, sender, is_self, ts_ms, base_type, sub_type, source_type, "
           "content, text, category, render_status, quote, render_note")  # fmt: skip
# 2024-05-03 09:05 … 09:08 in Shanghai (UTC+8)
AT_0905, AT_0906, AT_0907, AT_0908 = 1714698300000, 1714698360000, 1714698420000, 1714698480000
TAILLESS_QUOTE = "<msg><appmsg><title>我没问我爸</title><type>57</type></appmsg></msg>"


def spreadsheet_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """What Excel or WPS writes on "save as CSV UTF-8": a BOM, CRLF rows, LF inside quoted cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh, lineterminator="\r\n")
        out.writerow(header)
        out.writerows(rows)
    return path


def stored(ws: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(ws / "chat.db")
    try:
        return conn.execute(f"SELECT {COLUMNS} FROM messages ORDER BY ts_ms, source_id").fetchall()
    finally:
        conn.close()


def ingest(*args: str | Path) -> Any:
    result = run_cli("ingest", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def text_row(key: str, chat: str, sender: str, ts: int, text: str, source: str = f"pywxdump:{ME}") -> tuple[Any, ...]:
    server = int(key) if key.isdigit() else None
    source_type = 1 if source.startswith("memotrace") else None
    is_self = int(sender == ME)
    return (source, key, server, chat, sender, is_self, ts, 1, 0, source_type, text, text, "text", "ok", "", "")


def test_pywxdump_saved_by_a_spreadsheet_is_read_whole(tmp_path: Path) -> None:
    rows = [
        [1, "401", "文本", 0, HU, HU, "五一去哪", "", "2024/5/3 9:05"],
        [2, "402", "文本", 1, ME, HU, "还没想好\n你呢", "", "2024/5/3 9:06"],
        [3, "403", "引用回复", 0, HU, HU, "我没问我爸", "", "2024/5/3 9:07"],  # the reply alone, no [引用] tail
        [4, "404", "文本", 0, HU, HU, '她说"好"', "", "2024/05/03 09:08:00"],
        [5, "405", "文件", 0, HU, HU, "周报.pdf", "", "2024/5/3 9:09"],  # words where PyWxDump writes its label
    ]
    spreadsheet_csv(tmp_path / "export" / f"{HU}_0_5.csv", PYWXDUMP, rows)
    result = ingest(tmp_path / "export", "--workspace", tmp_path / "ws")
    assert "read 5, added 5" in result.stdout and "skipped none" in result.stdout, result.stdout
    assert stored(tmp_path / "ws") == [
        text_row("401", HU, HU, AT_0905, "五一去哪"),
        text_row("402", HU, ME, AT_0906, "还没想好\n你呢"),
        (f"pywxdump:{ME}", "403", 403, HU, HU, 0, AT_0907, 49, 57, None, TAILLESS_QUOTE, "我没问我爸", "quote", "ok",
         ": [未知消息]", ""),
        text_row("404", HU, HU, AT_0908, '她说"好"'),
        (f"pywxdump:{ME}", "405", 405, HU, HU, 0, AT_0908 + 60_000, 49, 6, None,
         "<msg><appmsg><title>周报.pdf</title><type>6</type></appmsg></msg>", "[文件]周报.pdf", "file", "ok", "", ""),
    ]  # fmt: skip


def test_every_time_form_is_read_in_the_given_zone(tmp_path: Path) -> None:
    times = ["2024/5/3 9:05", "2024-5-3 9:05:07", "2024-05-03T09:05:00", "2023-06-21T23:07:25+08:00",
             "2023-06-21T15:07:25Z", "1687360045", "1687360045123"]  # fmt: skip
    rows = [[i, str(500 + i), "文本", 0, HU, HU, f"第{i}条", "", t] for i, t in enumerate(times)]
    spreadsheet_csv(tmp_path / "export" / f"{HU}_0_7.csv", PYWXDUMP, rows)
    ingest(tmp_path / "export", "--self", ME, "--timezone", "America/New_York", "--workspace", tmp_path / "ws")
    # local forms are New York's time (UTC-4 in May); a zone or an epoch says the instant itself
    by_id = {row[1]: row[6] for row in stored(tmp_path / "ws")}
    assert by_id == {"500": AT_0905 + 12 * 3600_000, "501": AT_0905 + 12 * 3600_000 + 7000,
                     "502": AT_0905 + 12 * 3600_000, "503": 1687360045000, "504": 1687360045000,
                     "505": 1687360045000, "506": 1687360045123}  # fmt: skip


def test_pywxdump_of_which_no_row_can_be_read_is_an_error(tmp_path: Path) -> None:
    rows = [[1, "401", "文本", 0, HU, HU, "五一去哪", "", "昨天 9:05"], [2, "402", "文本", 0, HU, HU, "嗯", "", "9:06"]]
    spreadsheet_csv(tmp_path / "export" / f"{HU}_0_2.csv", PYWXDUMP, rows)
    result = run_cli("ingest", tmp_path / "export", "--self", ME, "--workspace", tmp_path / "ws")
    first = f"{HU}_0_2.csv: no row could be read (the first: unreadable time '昨天 9:05')"
    fails(result, 2, f"nothing in the PyWxDump export in {tmp_path / 'export'} could be read; {first}",
          "hint: times are read as")  # fmt: skip
    assert len(result.stderr.splitlines()) == 2  # the error and its hint
    assert not (tmp_path / "ws" / "chat.db").exists() or stored(tmp_path / "ws") == []


def test_pywxdump_pages_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    good = [[1, "401", "文本", 0, HU, HU, "五一去哪", "", "2024/5/3 9:05"]]
    spreadsheet_csv(folder / f"{HU}_0_2.csv", PYWXDUMP, good)
    spreadsheet_csv(folder / f"{HU}_2_4.csv", PYWXDUMP, [[2, "402", "文本", 0, HU, HU, "嗯", "", "五月三日"]])
    (folder / f"{HU}_4_6.json").write_text('[{"id": 3, "MsgSvrID": "403", "type_name": "文本", "msg": "cut', "utf-8")
    result = ingest(folder, "--self", ME, "--workspace", tmp_path / "ws")
    assert "read 1, added 1" in result.stdout, result.stdout
    why = "no row could be read (the first: unreadable time '五月三日')"
    assert f"note: {HU}_2_4.csv was not read: {why}" in result.stdout
    assert f"note: {HU}_4_6.json was not read: {HU}_4_6.json is not readable JSON" in result.stdout
    assert stored(tmp_path / "ws") == [text_row("401", HU, HU, AT_0905, "五一去哪")]
    (folder / f"{HU}_0_2.csv").unlink()
    fails(run_cli("ingest", folder, "--self", ME, "--workspace", tmp_path / "ws2"), 2,
          f"none of the 2 files of the PyWxDump export in {folder} could be read; {HU}_2_4.csv: {why}")  # fmt: skip


def test_memotrace_all_in_one_messages_csv(tmp_path: Path) -> None:
    rows = [
        ["1", HU, "1", "0", "0", "1687360045", "0", "在吗", "2023-06-21 23:07:25"],
        ["2", HU, "1", "0", "1", "1687360050", "0", "在", "2023-06-21 23:07:30", "0"],  # one field more than the header
        ["3", ROOM, "1", "0", "0", "1687360060", "0", "群里的话", "2023-06-21 23:07:40"],
        ["4", HU, "1", "0", "0", "1687360070"],  # cut short
    ]
    folder = tmp_path / "WeChatMsg"
    spreadsheet_csv(folder / "messages.csv", MEMO_ALL, rows)
    fails(run_cli("ingest", folder, "--workspace", tmp_path / "ws"), 2, "cannot tell whose MemoTrace export this is",
          "--self")  # fmt: skip
    result = ingest(folder, "--self", ME, "--workspace", tmp_path / "ws")
    assert "read 3, added 3" in result.stdout and "skipped 1 wrong number of CSV fields" in result.stdout, result.stdout
    source = f"memotrace:{ME}"
    assert stored(tmp_path / "ws") == [
        text_row(f"{HU}:1687360045:1", HU, HU, 1687360045000, "在吗", source),
        text_row(f"{HU}:1687360050:2", HU, ME, 1687360050000, "在", source),
        text_row(f"{ROOM}:1687360060:3", ROOM, "", 1687360060000, "群里的话", source),  # its sender was not exported
    ]


def test_memotrace_spoiled_times_plain_quotes_and_unreadable_chats(tmp_path: Path) -> None:
    folder = tmp_path / "聊天记录"
    rows = [
        ["1", "7", "1", "0", "0", "1.68736E+09", "0", "在吗", "2024/5/3 9:05", "胡三行", "Hu", HU],  # Excel's rounding
        ["2", "7", "49", "57", "0", "1714698360", "0", "我没问我爸", "2024/5/3 9:06", "胡三行", "Hu", HU],
    ]
    spreadsheet_csv(folder / "胡三行" / "胡三行_utf8.csv", MEMO, rows)
    bad = [["1", "8", "1", "0", "0", "x", "0", "嗨", "昨天", "周", "Zhou", "wxid_zhou"]]
    spreadsheet_csv(folder / "周" / "周_utf8.csv", MEMO, bad)
    result = ingest(folder, "--self", ME, "--workspace", tmp_path / "ws")
    assert "read 2, added 2" in result.stdout, result.stdout
    assert "note: 周_utf8.csv was not read: no row could be read (the first: unreadable time 'x')" in result.stdout
    source = f"memotrace:{ME}"
    assert stored(tmp_path / "ws") == [
        text_row(f"{HU}:1714698300:1", HU, HU, AT_0905, "在吗", source),
        (source, f"{HU}:1714698360:2", None, HU, HU, 0, AT_0906, 49, 57, 49, TAILLESS_QUOTE, "我没问我爸", "quote",
         "ok", ": [未知消息]", ""),
    ]  # fmt: skip
    (folder / "胡三行" / "胡三行_utf8.csv").unlink()
    fails(run_cli("ingest", folder, "--self", ME, "--workspace", tmp_path / "ws2"), 2,
          "nothing in the MemoTrace export in", "周_utf8.csv: no row could be read")  # fmt: skip


def test_chatlog_csv_saved_by_a_spreadsheet_and_json_without_a_zone(tmp_path: Path) -> None:
    rows = [["2024/5/3 9:05", "Hu", HU, "胡三行", HU, "五一去哪"],
            ["2024/5/3 9:06", "我", ME, "胡三行", HU, "还没想好"]]  # fmt: skip
    spreadsheet_csv(tmp_path / "csv" / "chatlog.csv", CHATLOG, rows)
    ingest(tmp_path / "csv", "--workspace", tmp_path / "ws")
    source = f"chatlog-csv:{ME}"
    assert stored(tmp_path / "ws") == [
        text_row(f"{HU}:2024/5/3 9:05:0", HU, HU, AT_0905, "五一去哪", source),
        text_row(f"{HU}:2024/5/3 9:06:0", HU, ME, AT_0906, "还没想好", source),
    ]
    answer = [{"seq": 1, "time": "2024-05-03 09:05:00", "talker": HU, "talkerName": "胡三行", "sender": HU,
               "senderName": "Hu", "isSelf": False, "type": 1, "subType": 0, "content": "五一去哪"},
              {"seq": 2, "time": 1714698360000, "talker": HU, "talkerName": "胡三行", "sender": ME,
               "senderName": "我", "isSelf": True, "type": 1, "subType": 0, "content": "还没想好"}]  # fmt: skip
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "answer.json").write_text(json.dumps(answer, ensure_ascii=False), "utf-8")
    ingest(tmp_path / "json", "--workspace", tmp_path / "ws2")
    source = f"chatlog:{ME}"
    assert stored(tmp_path / "ws2") == [
        text_row(f"{HU}:1", HU, HU, AT_0905, "五一去哪", source),
        text_row(f"{HU}:2", HU, ME, AT_0906, "还没想好", source),
    ]
    spreadsheet_csv(tmp_path / "bad" / "chatlog.csv", CHATLOG, [["五月三日", "Hu", HU, "胡三行", HU, "嗨"]])
    why = "chatlog.csv: no row could be read (the first: unreadable time '五月三日')"
    fails(run_cli("ingest", tmp_path / "bad", "--self", ME, "--workspace", tmp_path / "ws3"), 2,
          "nothing in the chatlog export in", why)  # fmt: skip


def test_the_account_is_the_flag_else_the_readers_guesses_else_the_workspaces() -> None:
    def never() -> str:
        raise AssertionError("a later guess is not tried once one is known")

    ask = {"message": "cannot tell whose export this is", "hint": "pass --self"}
    workspace = Hints(account=lambda: "wxid_ws")
    assert resolve_self(Hints(self_wxid="wxid_flag", account=never), never, **ask) == "wxid_flag"
    assert resolve_self(workspace, None, lambda: "", lambda: "wxid_guess", never, **ask) == "wxid_guess"
    assert resolve_self(workspace, None, lambda: None, **ask) == "wxid_ws"
    assert resolve_self("wxid_flag", never, **ask) == "wxid_flag"  # a bare --self (the PC readers)
    with pytest.raises(UsageError, match="cannot tell whose export this is") as err:
        resolve_self(Hints(), lambda: None, **ask)
    assert err.value.hint == "pass --self"
