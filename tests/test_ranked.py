"""The ranked file: the seed's records load, bad records are one line each and never lost, pairs from scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wechat_avatar.errors import UsageError
from wechat_avatar.rlhf.ranked import Ranked, RankedFile, conversation, load_ranked, merge, pairs, source_of, update

SEED = {  # the seed's own example, as it wrote it (scores as strings)
    "source": "驾校周师傅:今天下午一点四十来练车，准时到哈\n乌冬面:科三哈\n驾校周师傅:肯定是的",
    "resp1": "为啥迟到？<s>[尴尬]",
    "resp2": "好<s>[手机图片]<s>我有点疑惑<s>为啥状态是允许的？",
    "resp3": "好<s>[手机图片]<s>收到",
    "scores": ["1", "2", "3"],
}


def test_the_seeds_record_loads_from_its_json_array(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps([SEED], ensure_ascii=False, indent=2), encoding="utf-8")
    records, problems = load_ranked(path)
    assert problems == []
    assert records == [Ranked(SEED["source"], (SEED["resp1"], SEED["resp2"], SEED["resp3"]), (1.0, 2.0, 3.0))]
    assert records[0].to_json() == SEED


def test_pairs_from_three_scores_higher_is_chosen_ties_give_none() -> None:
    r = Ranked("a:x", ("r1", "r2", "r3"), (1, 2, 3))
    assert pairs(r) == [("r3", "r2"), ("r3", "r1"), ("r2", "r1")]
    assert pairs(r.rescored([3, 3, 1])) == [("r1", "r3"), ("r2", "r3")]
    assert pairs(r.rescored([2, 1, 2])) == [("r1", "r2"), ("r3", "r2")]
    assert pairs(r.rescored([2, 2, 2])) == []


BAD = {
    "missing source": ({"resp1": "a", "scores": [1]}, 'no "source" (the context) string'),
    "missing candidates": ({"source": "a:x", "scores": []}, "no candidates (resp1, resp2, …)"),
    "gap": ({"source": "a:x", "resp1": "a", "resp3": "c", "scores": [1, 2]}, "resp2 is missing"),
    "missing scores": ({"source": "a:x", "resp1": "a"}, 'no "scores" list'),
    "word score": ({"source": "a:x", "resp1": "a", "resp2": "b", "scores": ["1", "good"]},
                   'score 2 ("good") is not a number'),
    "bool score": ({"source": "a:x", "resp1": "a", "scores": [True]}, "score 1 (true) is not a number"),
    "k mismatch": ({"source": "a:x", "resp1": "a", "resp2": "b", "resp3": "c", "scores": [1, 2]},
                   "3 candidates but 2 scores (k mismatch)"),
    "empty candidate": ({"source": "a:x", "resp1": "a", "resp2": "  ", "scores": [1, 2]}, "resp2 is empty"),
}  # fmt: skip


def test_each_bad_record_is_one_clear_line_and_is_kept_on_write(tmp_path: Path) -> None:
    path = tmp_path / "ranked.jsonl"
    good = {**SEED, "labeled": True}
    bad = [json.dumps(b, ensure_ascii=False) for b, _ in BAD.values()]
    raw = [json.dumps(good, ensure_ascii=False), "{not json", *bad]
    path.write_text("\n".join(raw) + "\n", encoding="utf-8")
    records, problems = load_ranked(path)
    assert len(records) == 1 and records[0].labeled
    assert problems[0] == "ranked.jsonl:2: not JSON"
    for (name, (_, message)), line in zip(BAD.items(), problems[1:], strict=True):
        assert line.startswith("ranked.jsonl:") and message in line, name
        assert "\n" not in line
    # a write (e.g. a new record merged in) keeps the labeled record and every bad line verbatim
    new = Ranked("b:y", ("x", "y"), (2, 1))
    update(path, [new])
    kept = path.read_text(encoding="utf-8").splitlines()
    assert set(raw[1:]) <= set(kept)
    assert RankedFile.read(path).records == [records[0], new]


def test_an_unlabeled_record_never_replaces_a_labeled_one() -> None:
    labeled = Ranked("a:x", ("r1", "r2"), (1, 2), labeled=True)
    judged = Ranked("a:x", ("r1", "r2"), (2, 1), origin="judge")
    out, refused = merge([labeled], [judged, Ranked("b:y", ("q",), (1,))])
    assert out[0] is labeled and refused == 1 and len(out) == 2
    relabeled = labeled.rescored([2, 1])
    assert merge([labeled], [relabeled]) == ([relabeled], 0)


def test_a_missing_ranked_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load_ranked(tmp_path / "none.jsonl")
    assert "rlhf sample" in err.value.hint


def test_source_and_prompt_messages_convert_both_ways() -> None:
    messages = [
        {"role": "system", "content": "你是乌冬面"},
        {"role": "user", "content": "驾校周师傅:今天下午一点四十来练车\n驾校周师傅:准时到哈"},
        {"role": "assistant", "content": "科三哈<s>[呲牙]"},
        {"role": "user", "content": "驾校周师傅:肯定是的"},
    ]
    source = source_of(messages, "乌冬面")
    lines = ["驾校周师傅:今天下午一点四十来练车", "驾校周师傅:准时到哈", "乌冬面:科三哈", "乌冬面:[呲牙]",
             "驾校周师傅:肯定是的"]  # fmt: skip
    assert source == "\n".join(lines)
    assert conversation(source, "乌冬面", "你是乌冬面") == messages
    assert conversation(source, "乌冬面", "你是乌冬面", window=1) == [messages[0], messages[3]]
