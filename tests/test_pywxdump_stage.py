"""The column-wise PyWxDump path (sources/pywxdump_stage.py) stages exactly what the row path does."""

from __future__ import annotations

import csv
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from wechat_avatar.config import RenderConfig
from wechat_avatar.ingest import prepare
from wechat_avatar.sources.pywxdump import COLUMNS, ExportFiles, message_from_row
from wechat_avatar.sources.pywxdump_stage import WHITESPACE, stage_files
from wechat_avatar.staging import Prepared

SOURCE, SELF, TZ = "pywxdump:wxid_me", "wxid_me", "Asia/Shanghai"
QUOTE = "我没问我爸\n\n[引用](2023-06-21 23:06:40)??:我妈说可以"
LINK = '标题\n描述\n\n<a href="https://mp.weixin.qq.com/s?a=1&b=2">标题</a>'
HEADER = ",".join(COLUMNS)
PLACE = "纬度:【31.2】 经度:【121.5】\n位置：外滩 上海市黄浦区\n"


class RowWay:
    """The same file without a stage method: what the ingest reads when staging is not offered."""

    def __init__(self, *paths: Path, tz: str = TZ) -> None:
        self.chunk = ExportFiles(paths, SOURCE, SELF, tz)

    def read(self) -> Any:
        return self.chunk.read()


def both_ways(cfg: RenderConfig, *paths: Path, tz: str = TZ) -> tuple[Prepared | None, Prepared]:
    mapper = partial(message_from_row, source=SOURCE, self_wxid=SELF, tz=tz)
    scratch = paths[0].parent
    return stage_files(paths, SOURCE, SELF, tz, cfg, scratch), prepare(RowWay(*paths, tz=tz), mapper, cfg, scratch)


def staged_rows(image: bytes | Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(":memory:")
    conn.deserialize(image if isinstance(image, bytes) else image.read_bytes())
    # typeof too: 1 and '1' compare equal in Python but not in SQL
    return conn.execute("SELECT rowid, *, typeof(is_self), typeof(server_id) FROM rows ORDER BY rowid").fetchall()


def assert_same(fast: Prepared | None, rows: Prepared) -> None:
    assert fast is not None
    assert staged_rows(fast.image) == staged_rows(rows.image)
    assert (fast.ids, fast.keys, sorted(fast.chats)) == (rows.ids, rows.keys, sorted(rows.chats))
    assert (fast.skipped, fast.repaired, fast.categories, fast.statuses) == (
        rows.skipped, rows.repaired, rows.categories, rows.statuses)  # fmt: skip


def write_csv(path: Path, rows: list[tuple[Any, ...]], header: tuple[str, ...] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path


def row(i: int, svr: Any = None, label: str = "文本", me: Any = 0, talker: str = "wxid_a",
        room: str = "wxid_a", msg: str = "好的", created: str = "2023-06-21 23:07:25") -> tuple[Any, ...]:  # fmt: skip
    return (i, 1000 + i if svr is None else svr, label, me, talker, room, msg, "", created)


ODD_ROWS = [
    row(1), row(2, me=1, talker="wxid_me"), row(3, room="123@chatroom", talker="wxid_b"),
    row(4, room=""),  # skipped: no room
    row(5, me=" 1"), row(6, me="2"), row(7, me=""),  # flags the columns leave to the row way
    row(8, svr=0), row(9, svr=""), row(10, svr=" 77"), row(11, svr="٣٣"), row(12, svr="0077"),
    row(13, svr=str(2**63 - 1)), row(14, svr="9" * 18),
    row(15, created="2023-13-01 10:00:00"), row(16, created="2023-6-1 1:2:3"), row(17, created=" 2023-06-21 23:07:25"),
    row(18, created="2023-06-21 23:+7:25"), row(19, created="nonsense"), row(20, created="2023-06-21 23:07:25 "),
    row(21, created="1969-12-31 23:59:59"), row(22, created="2023-06-21 23:59:60"),
    row(23, msg="hello  world\u3000again"), row(24, msg="a\x1cb"), row(25, msg=""), row(26, msg="x" * 40),
    row(27, msg="多\n行\n\n文本"), row(28, label="引用回复", msg=QUOTE), row(29, label="(分享)卡片式链接", msg=LINK),
    row(30, label="位置", msg=PLACE), row(31, label="语音通话", msg="语音/视频通话[通话时长 00:27]"),
    row(32, label="转账", msg="转账：￥1.00\n转账说明：饭钱\n转账时间：2023"), row(33, label="图片", msg="图片"),
    row(34, label="未知", msg="?"), row(35, label="not a label", msg="?"), row(36, label="系统通知", msg="你撤回了"),
    row(37, talker="我", room="123@chatroom"), row(38, talker="未知"), row(39, talker=""),
    row(40, label="文件", msg="文件"), row(41, label="动画表情", msg="[动画表情]"), row(42, svr=1042, msg="好的"),
    row(43, svr=1042, msg="好的"),  # the same server id twice
]  # fmt: skip
# CreateTime as a spreadsheet or another tool writes it: the row way reads them (local_ms)
SPREADSHEET_TIMES = [
    "2024/5/3 9:05", "2024/05/03 09:05:07", "2024-5-3 9:05", "2023-06-21 23:07", "2023-06-21T23:07:25",
    "2023-06-21T23:07:25+08:00", "2023-06-21T15:07:25Z", "2023-06-21 23:07:25.250", "1687360045", "1687360045123",
    "2024/2/30 9:05", "2024/5/3", "昨天 9:05",  # not a day, no time, not a time: skipped both ways
]  # fmt: skip
TIME_ROWS = [row(100 + i, created=t) for i, t in enumerate(SPREADSHEET_TIMES)]


@pytest.mark.parametrize("drop_text", [False, True])
def test_odd_rows_are_staged_as_the_row_way_stages_them(tmp_path: Path, drop_text: bool) -> None:
    cfg = RenderConfig(max_chars=16, drop=["text"] if drop_text else [])
    fast, rows = both_ways(cfg, write_csv(tmp_path / "wxid_a_0_43.csv", ODD_ROWS))
    assert_same(fast, rows)
    assert rows.skipped["no room_name"] == 1 and rows.skipped["unreadable time"] >= 2  # the odd rows really are odd


def test_spreadsheet_times_are_staged_as_the_row_way_stages_them(tmp_path: Path) -> None:
    fast, rows = both_ways(RenderConfig(), write_csv(tmp_path / "wxid_a_0_13.csv", [*TIME_ROWS, *ODD_ROWS[:3]]))
    assert_same(fast, rows)
    assert rows.skipped == {"unreadable time": 3} and len(rows.ids) == len(TIME_ROWS) - 3 + 3


def test_a_file_saved_by_a_spreadsheet_is_staged_as_the_row_way_stages_it(tmp_path: Path) -> None:
    """Excel and WPS write a BOM, end rows with CRLF, keep LF inside a multi-line cell and quote it."""
    rows = [row(1, created="2024/5/3 9:05"), row(2, msg="多\n行\n\n文本", created="2024/5/3 9:06"),
            row(3, label="引用回复", msg=QUOTE, created="2024/5/3 9:07"),
            row(4, msg='她说"好"', created="2024/5/3 9:08")]  # fmt: skip
    path = tmp_path / "wxid_a_0_4.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh, lineterminator="\r\n")
        out.writerow(COLUMNS)
        out.writerows(rows)
    fast, slow = both_ways(RenderConfig(), path)
    assert_same(fast, slow)
    assert not slow.skipped and len(slow.ids) == 4


def test_times_around_daylight_saving_changes(tmp_path: Path) -> None:
    """New York skips 02:00-03:00 on 2023-03-12 and repeats 01:00-02:00 on 2023-11-05."""
    times = ["2023-03-12 01:59:59", "2023-03-12 02:30:00", "2023-03-12 03:00:00",
             "2023-11-05 00:59:59", "2023-11-05 01:30:00", "2023-11-05 02:00:00"]  # fmt: skip
    rows = [row(i, created=t) for i, t in enumerate(times, start=1)]
    fast, slow = both_ways(RenderConfig(), write_csv(tmp_path / "wxid_a_0_6.csv", rows), tz="America/New_York")
    assert_same(fast, slow)


def test_columns_in_another_order_with_extras(tmp_path: Path) -> None:
    header = ("extra", *reversed(COLUMNS))
    rows = [("x", *reversed(r)) for r in ODD_ROWS]
    assert_same(*both_ways(RenderConfig(), write_csv(tmp_path / "wxid_a_0_43.csv", rows, header)))


def test_the_synthetic_export_is_staged_as_the_row_way_stages_it(formats: dict[str, Any]) -> None:
    files = sorted(Path(formats["pywxdump"].path).rglob("*.csv"))
    assert len(files) > 5
    for path in files:  # each file alone, then all in one task
        assert_same(*both_ways(RenderConfig(), path))
    assert_same(*both_ways(RenderConfig(), *files))


@pytest.mark.parametrize(
    "content",
    [
        f"{HEADER}\n1,2,文本,0,a,a,hi,,2023-06-21 23:07:25\n\n",
        f"{HEADER}\n1,2,文本,0,a,a,hi\n",
        f"{HEADER.replace('is_sender,', '')}\n1,2,文本,a,a,hi,,2023-06-21 23:07:25\n",
    ],
    ids=["blank line", "short row", "missing column"],
)
def test_files_the_csv_module_reads_otherwise_go_the_row_way(tmp_path: Path, content: str) -> None:
    path = tmp_path / "a_0_1.csv"
    path.write_text(content, encoding="utf-8")
    assert stage_files([path], SOURCE, SELF, TZ, RenderConfig(), tmp_path) is None


def test_gbk_and_json_files_go_the_row_way(tmp_path: Path) -> None:
    gbk = tmp_path / "a_0_1.csv"
    gbk.write_bytes(",".join(COLUMNS).encode() + "\n1,2,文本,0,a,a,你好,,2023-06-21 23:07:25\n".encode("gbk"))
    json_file = tmp_path / "a_0_2.json"
    json_file.write_text("[]", encoding="utf-8")
    good = write_csv(tmp_path / "wxid_a_0_1.csv", [row(1)])
    for files in ([gbk], [json_file], [good, gbk]):  # one file the row way: the whole task
        assert stage_files(files, SOURCE, SELF, TZ, RenderConfig(), tmp_path) is None


def test_the_whitespace_list_is_what_str_split_splits_on() -> None:
    assert {chr(c) for c in WHITESPACE} == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
