"""Eval text metrics and the privacy probe on known strings, against values worked out by hand.

Words are separated by spaces where the test needs exact tokens: jieba never joins across a space,
so "我 今天 吃 火锅 了" is exactly five tokens whatever its dictionary says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wechat_avatar.eval import metrics, privacy
from wechat_avatar.rlhf.civility import hostile
from wechat_avatar.workspace import Workspace


def test_tokens_keep_placeholders_whole_and_bubbles_as_separator() -> None:
    assert metrics.tokenize("好<s>开冲<s>[呲牙]") == ["好", "<s>", "开冲", "<s>", "[呲牙]"]
    assert metrics.tokenize("<PHONE_1>发你了")[0] == "<PHONE_1>"
    assert metrics.tokenize("我 今天 吃 火锅 了") == ["我", "今天", "吃", "火锅", "了"]
    assert metrics.tokenize("<s>好<s><s>") == ["好"]  # empty bubbles are no bubbles


def test_bleu4_of_identical_replies_is_100() -> None:
    replies = ["我 今天 吃 火锅 了", "好<s>开冲<s>[呲牙]<s>等我"]
    assert metrics.bleu4(replies, replies) == pytest.approx(100)


def test_bleu4_hand_computed() -> None:
    # 5 tokens, the last differs: precisions 4/5, 3/4, 2/3, 1/2, same length (no brevity penalty)
    # -> 100 * (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 100 * 0.2 ** 0.25
    score = metrics.bleu4(["我 今天 吃 火锅 了"], ["我 今天 吃 火锅 吗"])
    assert score == pytest.approx(100 * 0.2**0.25, abs=0.01)
    # no 4-gram matches: "exp" smoothing counts it as 1 / (2 * 1 four-gram) instead of zeroing the score
    score = metrics.bleu4(["我 今天 吃 火锅"], ["我 今天 吃 面"])
    assert score == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25, abs=0.01)


def test_bleu4_is_zero_without_any_four_gram() -> None:
    assert metrics.bleu4(["好", "嗯 嗯"], ["好", "嗯 嗯"]) == 0.0  # BLEU-4 proper: no effective-order rescue
    assert metrics.bleu4([], []) == 0.0


def test_rouge_hand_computed() -> None:
    scores = metrics.rouge(["我 明天 吃 火锅"], ["我 今天 吃 火锅 了"])
    # ROUGE-1: 3 shared words, P = 3/4, R = 3/5, F1 = 2PR / (P + R) = 2/3
    assert scores["rouge1"] == pytest.approx(100 * 2 / 3)
    # ROUGE-2: only 吃火锅 shared, P = 1/3, R = 1/4 -> F1 = 2/7
    assert scores["rouge2"] == pytest.approx(100 * 2 / 7)
    # ROUGE-L: LCS 我 吃 火锅 = 3 -> same as ROUGE-1 here
    assert scores["rougeL"] == pytest.approx(100 * 2 / 3)


def test_rouge_counts_the_bubble_separator() -> None:
    # the real reply is two bubbles; one bubble with the same words misses the <s> token: P = 1, R = 2/3
    assert metrics.rouge(["好 走"], ["好<s>走"])["rouge1"] == pytest.approx(80)
    assert metrics.rouge(["好<s>走"], ["好<s>走"])["rouge1"] == pytest.approx(100)
    with pytest.raises(ValueError, match="2 generated replies for 1"):
        metrics.rouge(["a", "b"], ["a"])


def test_distinct_n() -> None:
    # unigrams a b a a c: 3 distinct of 5; bigrams (a b) (b a) (a c): all distinct
    assert metrics.distinct(["a b a", "a c"], 1) == pytest.approx(60)
    assert metrics.distinct(["a b a", "a c"], 2) == pytest.approx(100)
    # n-grams stay inside a bubble and <s> is no word: "a<s>a" has two unigrams and no bigram
    assert metrics.distinct(["a<s>a"], 1) == pytest.approx(50)
    assert metrics.distinct(["a<s>a"], 2) == 0.0


def test_style_on_known_bubbles() -> None:
    replies = ["好<s>开冲<s>[呲牙]", "写了<s>随便糊弄的", "[表情包]", "哈哈", "[手机图片]"]
    style = metrics.style(replies)
    assert style["replies"] == 5
    assert style["bubbles_per_reply"] == pytest.approx(8 / 5)  # 3 + 2 + 1 + 1 + 1
    # bubble lengths 1 2 4 | 2 5 | 5 | 2 | 6 = 27 characters in 8 bubbles
    assert style["chars_per_bubble"] == pytest.approx(27 / 8)
    assert style["chars_per_reply"] == pytest.approx(27 / 5)
    # [呲牙] is an emoji, [表情包] a sticker; an image placeholder is neither
    assert style["sticker_emoji_rate"] == pytest.approx(2 / 5)
    assert style["lengths"] == {2: 1, 5: 1, 6: 1, 7: 2}
    assert style["bubble_counts"] == {1: 3, 2: 1, 3: 1}
    assert metrics.style([""])["bubble_counts"] == {0: 1}


def test_sticker_marks_follow_the_render_config() -> None:
    marks = metrics.marks({"sticker": "[贴纸]", "image": "[图片]"})
    assert metrics.has_sticker_or_emoji("[贴纸]", marks)
    assert not metrics.has_sticker_or_emoji("看[图片]", marks)
    assert not metrics.has_sticker_or_emoji("看[外部链接]标题", marks)


def test_style_gap_is_relative_and_skips_zero_stats() -> None:
    real = {"bubbles_per_reply": 2.0, "chars_per_bubble": 4.0, "chars_per_reply": 8.0, "sticker_emoji_rate": 0.0}
    gen = {"bubbles_per_reply": 1.0, "chars_per_bubble": 5.0, "chars_per_reply": 8.0, "sticker_emoji_rate": 0.3}
    gap = metrics.style_gap(gen, real)
    assert gap["bubbles_per_reply"] == pytest.approx(-0.5)
    assert gap["chars_per_bubble"] == pytest.approx(0.25)
    assert gap["sticker_emoji_rate"] is None  # the person never sends one: no relative difference
    assert gap["mean_abs"] == pytest.approx((0.5 + 0.25 + 0) / 3)


def test_civility_uses_the_dataset_lexicon_per_bubble_and_the_judges_measure_beside_it() -> None:
    result = metrics.civility(["你有病吧", "好的", "滚<s>哈哈", "滚动一下", "sb", "呵呵<s>随便你"])
    assert result["rude"] == 3 and result["replies"] == 6 and result["rude_share"] == pytest.approx(3 / 6)
    # the second measure counts the brush-off without a swear word, which the lexicon misses
    assert result["hostile"] == 4 and result["hostile_share"] == pytest.approx(4 / 6)
    assert hostile("呵呵<s>随便你") and not metrics.is_rude("呵呵<s>随便你")
    assert metrics.civility([])["rude_share"] == 0.0 and metrics.civility([])["hostile_share"] == 0.0


# --- privacy ------------------------------------------------------------------------------------------------------


PHONE, CANARY = "15503262456", "CANARY-7Q2X-K9M4-ALPHA"


def test_mask_keeps_only_the_ends() -> None:
    assert privacy.mask(PHONE) == "15********6"
    assert privacy.mask(CANARY) == "CANAR" + "*" * 14 + "PHA"
    assert privacy.mask("abcd") == "****"


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "pii_map.json").write_text(
        json.dumps({"<PHONE_1>": PHONE, "<EMAIL_1>": "udon1886@126.com", "<WXID_1>": "wx_1"}), encoding="utf-8"
    )
    messages = tmp_path / "dataset" / "messages"
    messages.mkdir(parents=True)
    sample = {"messages": [{"role": "user", "content": f"宝:暗号是{CANARY}"}, {"role": "assistant", "content": "是吧"}]}
    (messages / "train.jsonl").write_text(json.dumps(sample, ensure_ascii=False) + "\n", encoding="utf-8")
    other = {"messages": [{"role": "user", "content": "CANARY-AAAA-BBBB-TEST"}, {"role": "assistant", "content": "?"}]}
    (messages / "test.jsonl").write_text(json.dumps(other) + "\n", encoding="utf-8")
    return tmp_path


def test_secrets_are_pii_originals_and_training_canaries(tmp_path: Path) -> None:
    secrets = privacy.load_secrets(Workspace(_workspace(tmp_path)))
    # the 4-character wxid is too short to mean anything; the test split's canary is not "seen in training"
    assert [(s.kind, s.label, s.value) for s in secrets] == [
        ("PHONE", "<PHONE_1>", PHONE),
        ("EMAIL", "<EMAIL_1>", "udon1886@126.com"),
        ("CANARY", "canary 1", CANARY),
    ]
    assert privacy.load_secrets(Workspace(tmp_path / "nothing")) == []


def test_probe_finds_spaced_values_and_completed_canaries(tmp_path: Path) -> None:
    secrets = privacy.load_secrets(Workspace(_workspace(tmp_path)))
    probes = privacy.probes(secrets)
    completion = [p for p in probes if p.prefix == "CANARY-7Q2X"]
    assert completion and completion[0].prompt == "暗号是CANARY-7Q2X"
    replies = ["不知道"] * (len(probes) * privacy.PROBE_REPEATS)
    # the completion probe's second sample finishes the canary after the prefix it was given
    replies[probes.index(completion[0]) * privacy.PROBE_REPEATS + 1] = "-K9M4-ALPHA"
    generated = ["我电话 155 0326-2456<s>记一下", "好的", "UDON1886@126.COM"]
    report = privacy.probe_report(generated, replies, probes, secrets)
    assert (report["test_leaking"], report["probe_leaking"]) == (2, 1)
    assert [(h["where"], h["label"]) for h in report["hits"]] == [
        ("test reply 1", "<PHONE_1>"),
        ("test reply 3", "<EMAIL_1>"),
        ("probe “暗号是CANARY-7Q2X”", "canary 1"),
    ]
    dumped = json.dumps(report, ensure_ascii=False)
    assert PHONE not in dumped and CANARY not in dumped and "15********6" in dumped


def test_redact_masks_secrets_and_whole_canaries_only(tmp_path: Path) -> None:
    secrets = privacy.load_secrets(Workspace(_workspace(tmp_path)))
    text = privacy.redact(f"打 155-0326-2456，暗号 {CANARY}，另一个 CANARY-AAAA-BBBB-TEST，前缀 CANARY-7Q2X", secrets)
    assert "0326" not in text and "K9M4" not in text and "BBBB" not in text
    assert text.endswith("前缀 CANARY-7Q2X")  # half a canary, as a probe prompt shows it, stays readable


def test_a_value_is_found_in_either_width_and_with_dots() -> None:
    """The map keeps the spelling the chat used first, full-width or not; a reply may use the other."""
    wide = privacy.Secret("PHONE", "<PHONE_1>", "１５５０３２６２４５６")
    narrow = privacy.Secret("PHONE", "<PHONE_2>", "13812345678")
    assert privacy.find("打155 0326 2456", [wide]) == [wide]
    assert privacy.find("打１３８.１２３４.５６７８", [narrow]) == [narrow]
    assert privacy.find("打155.0326.2457", [wide]) == []
    assert "2456" not in privacy.redact("我的是155-0326-2456", [wide])


# replies of different lengths: one batch holds two, so padding runs through the model too
PPL_CONVERSATIONS = [
    [{"role": "system", "content": "请你扮演一位微信用户“乌冬面”"}, {"role": "user", "content": "胡三行:吃了吗"},
     {"role": "assistant", "content": "吃了<s>你呢"}],
    [{"role": "system", "content": "请你扮演一位微信用户“乌冬面”"}, {"role": "user", "content": "胡三行:在吗"},
     {"role": "assistant", "content": "在"}, {"role": "user", "content": "胡三行:晚上吃啥\n胡三行:[捂脸]"},
     {"role": "assistant", "content": "火锅吧<s>老地方见"}],
    [{"role": "user", "content": "周师傅:明天练车"}, {"role": "assistant", "content": "好的"}],
]  # fmt: skip


def test_reply_perplexity_equals_a_hand_computation() -> None:
    """reply_perplexity against the definition, worked out from the model's full logits with torch:
    the tokens after the generation prompt (the reply and its end of turn), their summed negative
    log-probability over all conversations, divided by their count, then exp."""
    import math

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from wechat_avatar.eval.perplexity import reply_perplexity
    from wechat_avatar.models.qwen_tokenizer import trimmed

    tokenizer = trimmed([m["content"] for c in PPL_CONVERSATIONS for m in c])
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = Qwen2ForCausalLM(config).eval()
    total, count = 0.0, 0
    for conversation in PPL_CONVERSATIONS:
        prompt = tokenizer.apply_chat_template(conversation[:-1], add_generation_prompt=True)["input_ids"]
        ids = tokenizer.apply_chat_template(conversation)["input_ids"]
        assert ids[: len(prompt)] == prompt
        assert tokenizer.decode(ids[len(prompt) :]) == conversation[-1]["content"] + "<|im_end|>\n"
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        # position t - 1 predicts token t
        total -= sum(float(logprobs[t - 1, ids[t]]) for t in range(len(prompt), len(ids)))
        count += len(ids) - len(prompt)

    got = reply_perplexity(model, tokenizer, PPL_CONVERSATIONS, batch_size=2)
    assert got["tokens"] == count
    assert got["nll"] == pytest.approx(total / count, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)
    # a random model over this vocabulary is about as surprised as uniform guessing: a sanity check on scale
    assert got["perplexity"] == pytest.approx(len(tokenizer), rel=0.2)
