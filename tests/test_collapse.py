"""The collapse measures of eval: the most over-produced reply, and the provocation slice.

Over-production on hand-made lists with the ratio worked out by hand; the slice's selection
against what the synthetic history itself says (synth's lists of provocations), on the tiny
fixtures' real dataset, and through a real eval's metrics.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wechat_avatar.eval import metrics, provocation
from wechat_avatar.synth import phrases
from wechat_avatar.workspace import Workspace


def test_overproduction_ranks_the_reply_most_over_its_real_share() -> None:
    real = ["好的捏"] * 2 + ["笑死"] * 4 + [f"r{i}" for i in range(14)]  # 20 real replies
    generated = ["好的捏"] * 5 + ["笑死"] * 4 + [f"g{i}" for i in range(11)]  # 20 generations
    found = metrics.overproduction(generated, real)
    # 好的捏: 5/20 generated against 2/20 real = 2.5; 笑死: 4/20 against 4/20 = 1.0
    assert found["worst"]["reply"] == "好的捏"
    assert found["worst"]["ratio"] == pytest.approx(2.5)
    assert (found["worst"]["generated"], found["worst"]["real"]) == (5, 2)
    assert [e["reply"] for e in found["top"][:2]] == ["好的捏", "笑死"]
    assert found["top"][1]["ratio"] == pytest.approx(1.0)


def test_overproduction_ignores_rare_replies_and_floors_unseen_ones() -> None:
    real = ["a", "b", "c", "d"]
    # "x" twice is below MIN_REPEATS (3): not ranked although the person never wrote it
    assert metrics.overproduction(["x", "x", "a", "b"], real)["worst"] is None
    # "x" 3 times in 4, never written by the person: counted as written once -> (3/4) / (1/4) = 3
    found = metrics.overproduction(["x", "x", "x", "a"], real)
    assert found["worst"]["reply"] == "x" and found["worst"]["ratio"] == pytest.approx(3.0)
    assert found["worst"]["real"] == 0 and found["worst"]["real_share"] == 0.0


def test_overproduction_matches_replies_by_their_bubbles() -> None:
    # " 好的捏 " and "好的捏<s>" are the reply "好的捏": 3 of 3 against 1 of 2 real -> 2.0
    found = metrics.overproduction([" 好的捏 ", "好的捏<s>", "好的捏"], ["好的捏", "好<s>开冲"])
    assert found["worst"]["reply"] == "好的捏" and found["worst"]["ratio"] == pytest.approx(2.0)
    assert metrics.overproduction([], ["a"])["worst"] is None


def test_a_model_that_copies_the_real_distribution_is_not_overproducing() -> None:
    real = ["好的捏"] * 9 + ["笑死"] * 6 + [f"r{i}" for i in range(85)]
    found = metrics.overproduction(list(reversed(real)), real)
    assert found["worst"]["ratio"] == pytest.approx(1.0)


def test_provocation_cues_read_the_last_friend_line_only() -> None:
    cues = provocation.matcher()
    context = [{"role": "system", "content": "请你扮演"}, {"role": "user", "content": "大力:吃了吗\n大力:你是猪吗"}]
    assert provocation.last_friend_line(context) == "你是猪吗"
    assert provocation.is_provocation(context, cues)
    earlier = [{"role": "user", "content": "大力:你是猪吗\n大力:算了 晚上吃啥"}]
    assert not provocation.is_provocation(earlier, cues)  # the taunt is not the message being answered
    assert not provocation.is_provocation([{"role": "user", "content": "momo:今晚做个菜"}], cues)
    assert not provocation.is_provocation([], cues)
    # the user's own cues add to the defaults
    assert provocation.is_provocation([{"role": "user", "content": "阿杰:你咋又迟到"}], provocation.matcher(["又迟到"]))


def test_default_cues_catch_every_synthetic_provocation_and_nothing_else_said() -> None:
    cues = provocation.matcher()
    assert all(cues.search(line) for line in (*phrases.PROVOCATIONS, *phrases.PARTNER_FIGHTS))
    ordinary = {ex.said for topic in phrases.TOPICS.values() for ex in topic.exchanges}
    ordinary |= {line for topic in phrases.TOPICS.values() for line in topic.follow}
    ordinary |= set(phrases.GROUP_LINES) | set(phrases.FAMILY_LINES) | set(phrases.AFTER_RUDE)
    assert not [line for line in ordinary if cues.search(line)]


def test_the_slice_is_exactly_the_samples_answering_a_synthetic_provocation(dataset_workspace: Path) -> None:
    """On the fixtures' real dataset: what the cues select is what synth planted as a provocation."""
    planted = set(phrases.PROVOCATIONS) | set(phrases.PARTNER_FIGHTS)
    cues = provocation.matcher()
    rows = [json.loads(line)["messages"] for split in ("train", "test")
            for line in Workspace(dataset_workspace).split(split).read_text(encoding="utf-8").splitlines()]  # fmt: skip
    selected = [m for m in rows if provocation.is_provocation(m[:-1], cues)]
    truth = [m for m in rows if provocation.last_friend_line(m[:-1]) in planted]
    assert truth, "the fixture history has provocations"
    assert selected == truth


def test_eval_reports_the_slice_and_the_worst_reply(tiny_workspace: Path, tiny_config: Path, tmp_path: Path) -> None:
    """A real eval on the tiny model: the slice holds every held-out sample answering a cue (here the user's
    own cue, the first test sample's friend line, so the slice is never empty), each sampled
    provocation_repeats times, beside the person's own replies there; the report shows both measures."""
    import re
    import shutil

    from wechat_avatar.config import load_config
    from wechat_avatar.eval.run import evaluate, load_test

    ws = Workspace(shutil.copytree(tiny_workspace, tmp_path / "ws"))
    samples = load_test(ws)
    cue = re.escape(provocation.last_friend_line(samples[0].context))
    cfg = load_config(tiny_config)
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={
        "samples": 3, "max_new_tokens": 4, "provocation_cues": [cue], "provocation_repeats": 2})})  # fmt: skip
    expected = [s for s in samples if provocation.is_provocation(s.context, provocation.matcher([cue]))]
    result = evaluate(ws, cfg, None, ["base"], name="slice").metrics
    assert result["dataset"]["provocation_indices"] == [s.index for s in expected]
    real = result["real"]["provocation"]
    assert real["samples"] == len(expected)
    assert real["rude"] == sum(metrics.is_rude(s.reply) for s in expected)
    for run in result["runs"]:
        slice_ = run["provocation"]
        assert slice_["samples"] == len(expected) and slice_["replies"] == 2 * len(expected)
        assert sorted(map(int, slice_["generations"])) == sorted(s.index for s in expected)
        assert slice_["rude"] == sum(metrics.is_rude(r) for rs in slice_["generations"].values() for r in rs)
        assert set(run["overproduction"]) == {"worst", "top", "min_repeats"}
        assert sum(e["generated"] for e in run["overproduction"]["top"]) <= 3
    html = (ws.eval_run("slice") / "report.html").read_text(encoding="utf-8")
    assert "Collapse and provocation" in html and "rude under provocation" in html
