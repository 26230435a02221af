"""The labeling page in a real headless Chromium (Debian's, driven by Playwright, as test_web.py does),
against the real label server on loopback: what the browser clicks and types is what ranked.jsonl holds.

A missing browser fails these tests, it does not skip them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_serve import call, running
from test_web import CHROMIUM, WAIT_MS

from wechat_avatar.rlhf.label import LabelSettings, build_app
from wechat_avatar.rlhf.ranked import Ranked, RankedFile

BAD_LINE = '{"source": "x:y", "resp1": "a", "scores": []}'
FIGHT = Ranked("女朋友:你是不是又在打游戏\n乌冬面:没有\n女朋友:你根本就不在乎我", ("滚", "在乎的<s>[拥抱]", "哦"),
               (2, 3, 1), provocation=True, judge="offline", origin="sample")  # fmt: skip
TEASE = Ranked("胡三行:你是不是菜啊", ("你才菜", "菜就多练呗[旺柴]"), (1, 2), judge="offline", origin="sample")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup`, or `apt-get install chromium fonts-noto-cjk`",
                    pytrace=False)  # fmt: skip
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 800}, locale="zh-CN")
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def ranked(tmp_path: Path) -> Path:
    path = tmp_path / "rlhf" / "ranked.jsonl"
    RankedFile(path, [FIGHT, TEASE], bad=[BAD_LINE]).write()
    return path


@pytest.fixture
def label(ranked: Path) -> Iterator[str]:
    with running(build_app(LabelSettings(ranked, "乌冬面"))) as url:
        yield url


def candidates(page: Any) -> list[tuple[str, str]]:
    """(text with bubbles joined by <s>, score) of each candidate as the page shows them, top first."""
    script = ("cs => cs.map(c => [Array.from(c.querySelectorAll('.bubble'), b => b.textContent).join('<s>'), "
              "c.querySelector('input.score').value])")  # fmt: skip
    return [tuple(c) for c in page.eval_on_selector_all(".candidate", script)]


def saved(page: Any) -> None:
    page.click("#save")
    page.wait_for_function("document.querySelector('#status').textContent === 'saved'")


def test_reorder_rescore_and_rewrite_are_saved_as_clicked(page: Any, label: str, ranked: Path) -> None:
    page.goto(label)
    page.wait_for_selector(".candidate")
    context = page.eval_on_selector_all("#context .line", "ls => ls.map(l => l.className + '|' + l.textContent)")
    assert context == ["line|女朋友你是不是又在打游戏", "line self|乌冬面没有", "line|女朋友你根本就不在乎我"]
    assert candidates(page) == [("在乎的<s>[拥抱]", "3"), ("滚", "2"), ("哦", "1")]  # best first
    assert "1 bad records kept" in page.inner_text("#summary")
    # move "滚" down below "哦": the order gives the scores
    page.click(".candidate:nth-child(2) button.down")
    assert candidates(page) == [("在乎的<s>[拥抱]", "3"), ("哦", "2"), ("滚", "1")]
    # rewrite the best one: the rewrite joins on top
    page.click(".candidate:nth-child(1) button.rewrite")
    assert page.input_value("#rewrite") == "在乎的<s>[拥抱]"
    page.fill("#rewrite", "在乎的呀<s>刚才是我不好<s>[拥抱]")
    page.click("#add")
    assert candidates(page)[0] == ("在乎的呀<s>刚才是我不好<s>[拥抱]", "4")
    saved(page)
    records = RankedFile.read(ranked)
    responses = ("在乎的呀<s>刚才是我不好<s>[拥抱]", "在乎的<s>[拥抱]", "哦", "滚")
    assert records.records[0] == Ranked(FIGHT.source, responses, (4, 3, 2, 1), labeled=True, origin="label",
                                        provocation=True, judge="offline")  # fmt: skip
    assert records.records[1] == TEASE and records.bad == [BAD_LINE]
    assert page.eval_on_selector("#records li:nth-child(1) button", "b => b.className") == "labeled provocation current"


def test_a_typed_score_and_ties_are_saved(page: Any, label: str, ranked: Path) -> None:
    page.goto(label)
    page.click("#records li:nth-child(2) button")
    shown = "document.querySelector('.candidate .bubble').textContent === '菜就多练呗[旺柴]'"
    page.wait_for_function(f"document.querySelectorAll('.candidate').length === 2 && {shown}")
    page.fill(".candidate:nth-child(2) input.score", "2")  # "你才菜" up to a tie
    page.press(".candidate:nth-child(2) input.score", "Enter")
    page.fill(".candidate:nth-child(1) input.score", "0.5")  # then below it
    page.press(".candidate:nth-child(1) input.score", "Enter")
    assert candidates(page) == [("你才菜", "2"), ("菜就多练呗[旺柴]", "0.5")]
    saved(page)
    record = RankedFile.read(ranked).records[1]
    assert record.responses == ("你才菜", "菜就多练呗[旺柴]") and record.scores == (2.0, 0.5) and record.labeled
    assert RankedFile.read(ranked).records[0] == FIGHT


def test_the_server_refuses_a_bad_record_with_a_json_error(label: str, ranked: Path) -> None:
    before = ranked.read_bytes()
    for body, status, message in [
        ({"source": TEASE.source, "responses": ["a", "b"], "scores": [1]}, 422, "2 candidates but 1 scores"),
        ({"source": TEASE.source, "responses": ["a", " "], "scores": [1, 2]}, 422, "resp2 is empty"),
        ({"source": "nobody:here", "responses": ["a"], "scores": [1]}, 404, "not in the ranked file"),
        ({"source": TEASE.source, "responses": ["a"], "scores": ["x"]}, 422, "one score each"),
    ]:
        got, _, raw = call(label, "POST", "/api/records", body)
        assert got == status and message in json.loads(raw)["error"]["message"]
    assert ranked.read_bytes() == before


def test_label_off_loopback_or_without_candidates_is_one_line(tmp_path: Path) -> None:
    remote = run_cli("rlhf", "label", "-w", tmp_path, "--host", "0.0.0.0")
    assert remote.returncode == 2 and "refusing to serve the labeling page" in remote.stderr
    empty = run_cli("rlhf", "label", "-w", tmp_path)
    assert empty.returncode == 2 and "nothing to label" in empty.stderr and "Traceback" not in empty.stderr
