"""PyWxDump, MemoTrace and chatlog exports, hand-written with the reference's columns (§5)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from wechat_avatar.sources.chatlog import shape
from wechat_avatar.sources.textfile import local_ms

ME, HU, ROOM = "wxid_me", "wxid_hu", "123@chatroom"
PYWXDUMP_HEADER = ["id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src", "CreateTime"]
# (row, text it renders to)
PYWXDUMP_ROWS: list[tuple[list[Any], str]] = [
    ([1, "301", "文本", 0, HU, HU, "在吗[捂脸]", "", "2023-06-21 23:07:25"], "在吗[捂脸]"),
    ([2, "302", "文本", 1, "我", HU, "在", "", "2023-06-21 23:07:30"], "在"),
    ([3, "303", "引用回复", 0, HU, HU, "我没问我爸\n\n[引用](2023-06-21 23:06:40)??:我妈说可以", "",
      "2023-06-21 23:07:40"], "我没问我爸"),
    ([4, "304", "(分享)卡片式链接", 1, "我", HU,
      '打工人的周一\n摸鱼指南\n\n<a href="https://mp.weixin.qq.com/s/x">点击查看详情</a>', "https://mp.weixin.qq.com/s/x",
      "2023-06-21 23:07:50"], "[外部链接]打工人的周一"),
    ([5, "305", "图片", 0, HU, HU, "图片", "FileStorage/MsgAttach/x.dat", "2023-06-21 23:08:00"], "[手机图片]"),
    ([6, "306", "语音通话", 0, HU, HU, "语音/视频通话[通话时长 00:27]", "", "2023-06-21 23:08:10"],
     "[语音通话]通话时长 00:27"),
    ([7, "307", "位置", 0, HU, HU, "纬度:【31.2】 经度:【121.4】\n位置：上海市人民大道200号 人民广场\n其他信息：{}", "",
      "2023-06-21 23:08:20"], "[位置]人民广场"),
    ([8, "308", "转账", 0, HU, HU, "已收款：￥20.00\n转账说明：饭钱\n转账时间：2023-06-21 23:08:30\n", "",
      "2023-06-21 23:08:30"], "[微信转账]"),
    ([9, "309", "系统通知", 0, "未知", ROOM, '"胡三行"邀请你加入了群聊', "", "2023-06-21 23:08:40"],
     '"胡三行"邀请你加入了群聊'),
    ([10, "310", "文本", 0, HU, ROOM, "群里的话", "", "2023-06-21 23:08:50"], "群里的话"),
    ([11, "311", "(分享)音乐", 0, HU, ROOM, "(分享)音乐", "", "2023-06-21 23:09:00"], "[音乐]"),  # only the label
]  # fmt: skip
USERS = {HU: {"wxid": HU, "nickname": "Hu", "remark": "胡三行", "account": "hu_123"}}


def write_csv(path: Path, header: list[str], rows: list[list[Any]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def pywxdump_folder(root: Path) -> Path:
    write_csv(root / HU / f"{HU}_0_9.csv", PYWXDUMP_HEADER, [r for r, _ in PYWXDUMP_ROWS[:8]])
    write_csv(root / ROOM / f"{ROOM}_0_4.csv", PYWXDUMP_HEADER, [r for r, _ in PYWXDUMP_ROWS[8:]])
    (root / HU / "users.json").write_text(json.dumps(USERS, ensure_ascii=False), encoding="utf-8")
    return root


def messages(ws: Path) -> list[dict[str, Any]]:
    result = run_cli("messages", "--workspace", ws)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_pywxdump_csv_hand_written(tmp_path: Path) -> None:
    folder = pywxdump_folder(tmp_path / "export")
    result = run_cli("ingest", folder, "--self", ME, "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert "read 11, added 11" in result.stdout
    out = messages(tmp_path / "ws")
    assert [m["text"] for m in out] == [text for _, text in PYWXDUMP_ROWS]
    assert out[0]["time"] == "2023-06-21T23:07:25+08:00" and out[0]["chat"] == "胡三行"
    assert (out[1]["sender"], out[1]["is_self"]) == (ME, True)
    assert (out[8]["sender"], out[9]["sender"], out[9]["sender_name"]) == ("", HU, "胡三行")
    # the same rows as PyWxDump's JSON export, into the same workspace: nothing new
    items = [dict(zip(PYWXDUMP_HEADER, row, strict=True)) | {"extra": {}} for row, _ in PYWXDUMP_ROWS]
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "all_0_12.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    again = run_cli("ingest", tmp_path / "json", "--self", ME, "--workspace", tmp_path / "ws")
    assert again.returncode == 0 and "added 0, already stored 11" in again.stdout, again.stdout + again.stderr


def test_pywxdump_times_follow_timezone(tmp_path: Path) -> None:
    folder = pywxdump_folder(tmp_path / "export")
    result = run_cli("ingest", folder, "--self", ME, "--timezone", "UTC", "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    assert messages(tmp_path / "ws")[0]["time"] == "2023-06-22T07:07:25+08:00"  # 23:07 UTC, shown in Shanghai
    bad = run_cli("ingest", folder, "--timezone", "Mars/Olympus", "--workspace", tmp_path / "ws2")
    assert bad.returncode == 2 and "--timezone: unknown time zone 'Mars/Olympus'" in bad.stderr


def test_memotrace_hand_written(tmp_path: Path) -> None:
    header = ["localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
              "Remark", "NickName", "Sender"]  # fmt: skip
    rows = [
        [1, 5, 1, 0, 0, 1687360045, 4, "在吗", "2023-06-21 23:07:25", "胡三行", "Hu", HU],
        [2, 5, 1, 0, 1, 1687360050, 2, "在", "2023-06-21 23:07:30", "乌冬面", "乌冬面", ME],
        [3, 5, 49, 57, 1, 1687360060, 2, "", "2023-06-21 23:07:40", "乌冬面", "乌冬面", ME],  # XML not exported
        [4, 5, 49, 6, 0, 1687360070, 4, "", "2023-06-21 23:07:50", "胡三行", "Hu", HU],
        [5, 5, 47, 0, 0, 1687360080, 4, '<msg><emoji md5="a" /></msg>', "2023-06-21 23:08:00", "胡三行", "Hu", HU],
    ]
    write_csv(tmp_path / "聊天记录" / "胡三行" / "胡三行_utf8.csv", header, rows, encoding="utf-8-sig")
    result = run_cli("ingest", tmp_path / "聊天记录", "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    out = messages(tmp_path / "ws")
    assert [m["text"] for m in out] == ["在吗", "在", "[未知消息]", "[文件]", "[表情包]"]
    assert [m["status"] for m in out][2:4] == ["failed", "ok"]  # a quote without its XML says it failed
    assert {m["chat_id"] for m in out} == {HU} and out[1]["is_self"]


CHATLOG_JSON = [
    {"seq": 1687360045000, "time": "2023-06-21T23:07:25+08:00", "talker": HU, "talkerName": "胡三行",
     "isChatRoom": False, "sender": HU, "senderName": "胡三行", "isSelf": False, "type": 1, "subType": 0,
     "content": "在吗"},
    {"seq": 1687360050000, "time": "2023-06-21T23:07:30.123456789+08:00", "talker": HU, "talkerName": "胡三行",
     "isChatRoom": False, "sender": ME, "senderName": "乌冬面", "isSelf": True, "type": 49, "subType": 57,
     "content": "我没问我爸", "contents": {"refer": {"type": 1, "senderName": "??", "content": "我妈说可以"}}},
    {"seq": 1687360060000, "time": "2023-06-21T23:07:40+08:00", "talker": ROOM, "talkerName": "开黑群",
     "isChatRoom": True, "sender": HU, "senderName": "??", "isSelf": False, "type": 49, "subType": 5,
     "content": "", "contents": {"title": "打工人的周一", "url": "https://x"}},
    {"seq": 1687360070000, "time": "2023-06-21T23:07:50+08:00", "talker": ROOM, "talkerName": "开黑群",
     "isChatRoom": True, "sender": HU, "senderName": "??", "isSelf": False, "type": 3, "subType": 0,
     "content": "<msg><img md5=\"a\" /></msg>"},  # chatlog on 3.x data keeps the raw XML
    {"seq": 1687360080000, "time": "2023-06-21T23:08:00+08:00", "talker": ROOM, "talkerName": "开黑群",
     "isChatRoom": True, "sender": "系统消息", "senderName": "", "isSelf": False, "type": 10000, "subType": 0,
     "content": "\"胡三行\"修改群名为“开黑群”"},
]  # fmt: skip
CHATLOG_TEXTS = ["在吗", "我没问我爸", "[外部链接]打工人的周一", "[手机图片]", '"胡三行"修改群名为“开黑群”']


def test_chatlog_json_and_csv_hand_written(tmp_path: Path) -> None:
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "answer.json").write_text(json.dumps(CHATLOG_JSON, ensure_ascii=False), encoding="utf-8")
    result = run_cli("ingest", tmp_path / "json", "--workspace", tmp_path / "ws")
    assert result.returncode == 0, result.stderr
    out = messages(tmp_path / "ws")
    assert [m["text"] for m in out] == CHATLOG_TEXTS
    assert (out[1]["sender"], out[1]["is_self"], out[2]["sender_name"], out[4]["sender"]) == (ME, True, "??", "")
    quote = run_cli("stats", "--json", "--workspace", tmp_path / "ws").stdout
    assert json.loads(quote)["account"]["wxid"] == ME  # from isSelf
    csv_rows = [
        ["2023-06-21 23:07:25", "胡三行", HU, "胡三行", HU, "在吗"],
        ["2023-06-21 23:07:30", "乌冬面", ME, "胡三行", HU, "> ??(wxid_b) 06-21 23:06:40\n> 我妈说可以\n我没问我爸"],
        ["2023-06-21 23:07:40", "??", HU, "开黑群", ROOM, "[链接|打工人的周一](https://x)"],
        ["2023-06-21 23:07:50", "??", HU, "开黑群", ROOM, "![图片](http://127.0.0.1:5030/image/a)"],
        ["2023-06-21 23:08:00", "", "系统消息", "开黑群", ROOM, '"胡三行"修改群名为“开黑群”'],
    ]
    write_csv(tmp_path / "csv" / "answer.csv", ["Time", "SenderName", "Sender", "TalkerName", "Talker", "Content"],
              csv_rows)  # fmt: skip
    merged = run_cli("ingest", tmp_path / "csv", "--workspace", tmp_path / "ws")
    assert merged.returncode == 0 and "added 0, already stored 0, merged 5" in merged.stdout, merged.stdout
    alone = run_cli("ingest", tmp_path / "csv", "--workspace", tmp_path / "ws2")
    assert alone.returncode == 0, alone.stderr
    assert [m["text"] for m in messages(tmp_path / "ws2")] == CHATLOG_TEXTS


@pytest.mark.parametrize(
    ("content", "sender", "expected"),
    [
        ("[红包]", HU, (49, 2001)),
        ("[语音](http://h/voice/1)", HU, (34, 0)),
        ("[分享|标题|描述\n第二行](https://x)", HU, (49, 4)),
        ("[转账|发送 ￥20.00](饭钱)", HU, (49, 2000)),
        ('"${wxid_a}" 拍了拍 "${wxid_b}"', HU, (49, 62)),
        ("Type: 48 Content: ", HU, (48, 0)),
        ("今天[红包]好多", HU, (1, 0)),
        ("你好", "系统消息", (10000, 0)),
    ],
)
def test_chatlog_csv_content_shapes(content: str, sender: str, expected: tuple[int, int]) -> None:
    assert shape(content, sender)[:2] == expected


def test_local_times_follow_the_zone_rules() -> None:
    assert local_ms("2023-06-21 23:07:25", "Asia/Shanghai") == 1687360045000
    # New York: EST in January, EDT in July
    assert local_ms("2024-01-15 12:00:00", "America/New_York") == 1705338000000
    assert local_ms("2024-07-15 12:00:00", "America/New_York") == 1721059200000
