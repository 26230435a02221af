"""The dataset report: a self-contained HTML page drawn from DatasetStats, and the terminal summary."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

from wechat_avatar.dataset.report import summary_lines, write_report
from wechat_avatar.dataset.stats import DatasetStats

SYSTEM = "你是乌冬面，用你自己的语气回复。"
HOURS = [20, 5, 1, 0, 0, 2, 30, 80, 150, 200, 260, 280, 300, 240, 220, 230, 260, 300, 380, 500, 620, 700, 540, 180]


def realistic_stats() -> DatasetStats:
    """A hand-built run: Chinese chat names, a long tail of reply lengths, a `<script>` in a sample."""
    chats = Counter({"胡三行": 820, "驾校周师傅": 140, "开黑群": 2310, "家人群🏠": 960, "Alice & Bob <3": 75})
    chats.update({f"同学{i}": 40 - i for i in range(25)})
    return DatasetStats(
        self_name="乌冬面",
        formats=["firefly", "openai", "sharegpt"],
        store_messages=12_000,
        used_messages=9_100,
        drop_reasons=Counter({"official_account": 1500, "system": 600, "blocked_word": 300, "filler_dup": 500}),
        samples=Counter({"train": 2400, "test": 130}),
        samples_dropped=Counter({"too_long": 12, "empty_reply": 30}),
        sessions=800,
        messages_per_chat=chats,
        messages_per_category=Counter({"text": 9000, "sticker": 1200, "image": 900, "voice": 300, "quote": 80}),
        activity_by_hour=list(HOURS),
        reply_bubbles=Counter({1: 1300, 2: 700, 3: 300, 4: 120, 5: 40, 7: 8, 12: 2}),
        reply_chars=Counter({n: max(1, 400 // n) for n in range(1, 80)} | {400: 1}),
        token_lengths=[60 + (i * 37) % 500 for i in range(2530)],
        tokenizer="Qwen/Qwen2.5-0.5B-Instruct",
        pii_replaced=Counter({"phone": 14, "wxid": 40, "email": 3}),
        pii_distinct=Counter({"phone": 5, "wxid": 11, "email": 2}),
        profane_samples=17,
        examples=[
            {
                "conversation_id": "c1",
                "category": "private",
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "胡三行:今晚开黑吗\n胡三行:<script>alert(1)</script>"},
                    {"role": "assistant", "content": "好<s>开冲<s>[呲牙]"},
                ],
            }
        ]
        + [
            {"messages": [{"role": "user", "content": f"开黑群 阿{i}:上号"}, {"role": "assistant", "content": "来了"}]}
            for i in range(9)
        ],
    )


def test_report_has_every_section_and_escapes_chat_text(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Glyph missing" or other warnings leak to the user
        path = write_report(realistic_stats(), tmp_path / "out" / "report.html")
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "report.html" and not path.with_suffix(".tmp").exists()
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    for heading in ("Overview", "Message accounting", "Cleaning", "Distributions", "Example samples"):
        assert f"<h2>{heading}</h2>" in html
    assert html.count("<svg") == 7  # every plot has data
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Alice &amp; Bob &lt;3" in html  # in the SVG too
    assert "12,000" in html and "✓ adds up" in html and "Accounting mismatch" not in html
    assert ">开冲</div>" in html and "好&lt;s&gt;开冲" not in html  # reply bubbles shown apart
    assert "胡三行" in html and "Qwen/Qwen2.5-0.5B-Instruct" in html
    assert "Top 20 of 30 chats." in html


def test_report_is_self_contained(tmp_path: Path) -> None:
    html = write_report(realistic_stats(), tmp_path / "report.html").read_text(encoding="utf-8")
    urls = re.findall(r"[\w:-]*=?\"?https?://[^\s\"'<>)]*", html)
    assert urls and all(re.fullmatch(r"xmlns(:xlink)?=\"http://www\.w3\.org/(2000/svg|1999/xlink)", u) for u in urls)
    assert "<link" not in html and "src=" not in html and "@import" not in html


def test_report_warns_when_accounting_is_off(tmp_path: Path) -> None:
    stats = realistic_stats()
    stats.store_messages += 7
    html = write_report(stats, tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'class="banner"' in html and "Accounting mismatch" in html and "✗ accounted − chat.db = -7" in html


def test_empty_stats_render(tmp_path: Path) -> None:
    html = write_report(DatasetStats(), tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" not in html and "No message was dropped." in html and "No samples were written." in html
    assert "Accounting mismatch" not in html and "✓ adds up" in html


def test_rewrite_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")
    write_report(DatasetStats(), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_summary_lines() -> None:
    lines = summary_lines(realistic_stats())
    assert lines == [
        "samples: 2,400 train / 130 test from 800 sessions; 42 dropped in cleaning (empty_reply 30, too_long 12)",
        "messages: 9,100 used, 2,900 dropped of 12,000 in chat.db (official_account 1,500, system 600, "
        "filler_dup 500, +1 more)",
        "PII replaced: wxid 40, phone 14, email 3",
        "profane samples: 17",
    ]


def test_summary_lines_flag_a_mismatch_and_handle_empty() -> None:
    stats = realistic_stats()
    stats.used_messages -= 5
    assert summary_lines(stats)[-1] == "accounting mismatch: used + dropped = 11,995 but chat.db holds 12,000"
    assert summary_lines(DatasetStats()) == [
        "samples: 0 train / 0 test from 0 sessions",
        "messages: 0 used, 0 dropped of 0 in chat.db",
        "PII replaced: none",
        "profane samples: 0",
    ]
