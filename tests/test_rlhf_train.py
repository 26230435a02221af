"""Training on ranked candidates: pairs, the reward model's loss direction, PPO on one shared base, DPO, GRPO."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_YAML

from wechat_avatar.config import load_config
from wechat_avatar.dataset.splits import read_split, self_name
from wechat_avatar.errors import TrainingError
from wechat_avatar.rlhf.ranked import Ranked, source_of
from wechat_avatar.train.pairs import Pair, all_pairs, read_pairs
from wechat_avatar.train.scoring import bradley_terry
from wechat_avatar.workspace import Workspace

RUDE = "滚<s>烦不烦"
GENTLE = "好的呀<s>别生气嘛"
RLHF_YAML = {
    "rlhf": {
        "reward": {"max_steps": 12, "batch_size": 8, "learning_rate": 5e-3, "max_length": 96, "heldout_ratio": 0.25},
        "ppo": {"max_steps": 2, "batch_size": 2, "num_ppo_epochs": 1, "response_length": 6, "save_steps": 1,
                "learning_rate": 1e-3, "sft_coef": 0.1, "max_prompt_length": 96},
        "dpo": {"max_steps": 2, "batch_size": 2, "max_length": 96},
        "grpo": {"max_steps": 2, "batch_size": 2, "num_generations": 2, "max_completion_length": 6},
    }
}  # fmt: skip


# --- pairs (reading the file and `pairs` itself: tests/test_ranked.py) -------------------------------------------


def test_all_pairs_keeps_each_pairs_context_and_read_pairs_says_why_none(tmp_path: Path) -> None:
    records = [Ranked("a:在吗", ("x", "y", "z"), (1.0, 3.0, 2.0)), Ranked("a:走", ("u", "v"), (2.0, 2.0))]
    assert all_pairs(records) == [Pair("a:在吗", "y", "z"), Pair("a:在吗", "y", "x"), Pair("a:在吗", "z", "x")]
    workspace = Workspace(tmp_path)
    workspace.ranked.parent.mkdir(parents=True)
    workspace.ranked.write_text('{"source": "a:走", "resp1": "u", "resp2": "v", "scores": [2, 2]}\n'
                                '{"source": "a:走", "resp1": "u", "resp2": "v", "scores": ["x", 2]}\n')  # fmt: skip
    with pytest.raises(TrainingError, match=r'no preference pair .*1 × score 1 \("x"\) is not a number'):
        read_pairs(workspace)


# --- the reward loss's direction ----------------------------------------------------------------------------------


def _inverted(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """The seed's train_reward.py: the difference the wrong way round."""
    return -torch.nn.functional.logsigmoid(rejected - chosen).mean()


def _orders_pairs_right(loss_fn) -> bool:  # type: ignore[no-untyped-def]
    """Gradient descent with `loss_fn` on free rewards of 4 hand-made pairs: does chosen end up higher?"""
    chosen = torch.zeros(4, requires_grad=True)
    rejected = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.SGD([chosen, rejected], lr=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        loss_fn(chosen, rejected).backward()
        optimizer.step()
    return bool((chosen > rejected).all())


def test_bradley_terry_rewards_the_chosen_reply_and_the_inverted_loss_fails() -> None:
    assert bradley_terry(torch.tensor([2.0]), torch.tensor([0.0])) < bradley_terry(torch.tensor([0.0]),
                                                                                   torch.tensor([2.0]))  # fmt: skip
    assert _orders_pairs_right(bradley_terry)
    assert not _orders_pairs_right(_inverted)


# --- recipes on the tiny workspace ----------------------------------------------------------------------------------


def _ranked_lines(workspace: Path) -> list[str]:
    """Held-out contexts, each with the real reply, a rude and a gentle one: gentle 3 > real 2 > rude 1.
    Plus a tied record (no pair) and a broken one (counted, skipped)."""
    name = self_name(Workspace(workspace))
    lines = []
    for number, conversation in enumerate(read_split(Workspace(workspace), "test")[:16]):
        source = source_of(conversation[:-1], name)
        replies = [conversation[-1]["content"], RUDE, GENTLE]
        order = [(0, 1, 2), (1, 2, 0), (2, 0, 1)][number % 3]  # the rude one is not always resp2
        record = {"source": source, **{f"resp{i + 1}": replies[j] for i, j in enumerate(order)}}
        record["scores"] = [str({0: 2, 1: 1, 2: 3}[j]) for j in order]
        lines.append(json.dumps(record, ensure_ascii=False))
    lines.append(json.dumps({"source": "胡三行:在吗", "resp1": "在", "resp2": "嗯", "scores": [2, 2]}))
    lines.append(json.dumps({"source": "胡三行:在吗", "resp1": "在", "resp2": "嗯", "scores": ["x", 2]}))
    return lines


@pytest.fixture(scope="module")
def rlhf_workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny workspace with a hand-made rlhf/ranked.jsonl (copied: tiny_workspace is shared)."""
    workspace = Path(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("rlhf-ws") / "workspace"))
    ranked = Workspace(workspace).ranked
    ranked.parent.mkdir(parents=True, exist_ok=True)
    ranked.write_text("\n".join(_ranked_lines(workspace)) + "\n", encoding="utf-8")
    return workspace


@pytest.fixture(scope="module")
def rlhf_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rlhf-config") / "tiny.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(TINY_YAML), **RLHF_YAML}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reward(rlhf_workspace: Path, rlhf_config: Path) -> dict:  # type: ignore[type-arg]
    """`train reward` on the hand-made pairs: the run.json it wrote."""
    from wechat_avatar.train.reward import run_reward

    path, _ = run_reward(Workspace(rlhf_workspace), load_config(rlhf_config), log=lambda line: None)
    return json.loads((path / "run.json").read_text(encoding="utf-8"))


def test_reward_model_learns_the_order_and_reports_held_out_accuracy(reward: dict) -> None:  # type: ignore[type-arg]
    assert reward["skipped_records"] == {'score 1 ("x") is not a number': 1}
    assert reward["pairs"]["train"] + reward["pairs"]["heldout"] == 16 * 3  # the tied record gives none
    assert reward["contexts"]["heldout"] == 4
    # context long enough for max_length 96 lost its start, and each such pair is still there
    assert reward["pairs_truncated"] > 0 and reward["tokens_cut"] > 0
    assert reward["log"][-1]["loss"] < reward["log"][0]["loss"]
    assert reward["accuracy_after"]["heldout"] > reward["accuracy_before"]["heldout"]
    assert reward["accuracy_after"]["heldout"] >= 0.75


def test_the_recipe_with_the_seeds_inverted_loss_orders_pairs_wrong(rlhf_workspace: Path, rlhf_config: Path) -> None:
    from wechat_avatar.train.reward import RewardRecipe

    cfg = load_config(rlhf_config)
    cfg.rlhf.reward.max_steps = 6  # half the fixture's: enough to order the training pairs the wrong way
    # setup() and train() only read the workspace (save() would write): no copy needed
    recipe = RewardRecipe(Workspace(rlhf_workspace), cfg, log=lambda line: None, loss=_inverted)
    recipe.setup()
    summary = recipe.train()
    assert summary["accuracy_after"]["train"] < 0.5


# --- PPO: the arithmetic on hand-computed examples ------------------------------------------------------------------


def test_gae_matches_a_hand_computed_example() -> None:
    from wechat_avatar.train.ppo import gae

    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the second reply ended after 2 tokens
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 1: δ2 = 1 - .5 = .5; δ1 = .9·.5 - .5 = -.05, A1 = -.05 + .45·.5; δ0 = -.05, A0 = -.05 + .45·A1
    # row 2: position 2 is past the end (its value 9 and reward 5 count for nothing):
    #        δ1 = 2 - .4 = 1.6; δ0 = .9·.4 - .2 = .16, A0 = .16 + .45·1.6
    expected = torch.tensor([[0.02875, 0.175, 0.5], [0.88, 1.6, 0.0]])
    assert torch.allclose(advantages, expected)
    assert torch.allclose(returns, torch.tensor([[0.52875, 0.675, 1.0], [1.08, 2.0, 0.0]]))


def test_token_rewards_penalise_kl_per_token_and_pay_the_score_at_the_end() -> None:
    from wechat_avatar.train.ppo import token_rewards

    logprobs, ref = torch.tensor([[-1.0, -2.0, -3.0]]), torch.tensor([[-1.5, -2.0, -1.0]])
    rewards, kl = token_rewards(torch.tensor([1.0]), logprobs, ref, torch.tensor([[1.0, 1.0, 0.0]]), kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 1.0, 0.0]]))


def test_policy_loss_clips_the_ratio() -> None:
    from wechat_avatar.train.ppo import policy_loss

    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[2.0, 0.5]]))  # ratios 2 and 0.5, both far outside 1 ± 0.2
    loss, clipfrac = policy_loss(new, old, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), clip=0.2)
    # A>0 gains at most 1.2·A; A<0 loses no less than 0.8·A: -(1.2 - 0.8) / 2
    assert torch.isclose(loss, torch.tensor(-0.2)) and clipfrac == 1.0


# --- PPO on the tiny workspace: four roles on one base ----------------------------------------------------------------


@pytest.fixture
def ppo_workspace(rlhf_workspace: Path, reward: dict, tmp_path: Path) -> Workspace:  # type: ignore[type-arg]
    """The workspace with SFT and reward adapters (copied per test)."""
    return Workspace(Path(shutil.copytree(rlhf_workspace, tmp_path / "workspace")))


def test_one_ppo_step_changes_only_the_policy_and_the_critic(ppo_workspace: Workspace, rlhf_config: Path) -> None:
    from wechat_avatar.eval.metrics import is_rude
    from wechat_avatar.train.ppo import PPORecipe

    cfg = load_config(rlhf_config)
    cfg.rlhf.ppo.max_steps = 1
    recipe = PPORecipe(ppo_workspace, cfg, log=lambda line: None, rude=is_rude)
    recipe.setup()
    assert set(recipe.model.peft_config) == {"policy", "reference", "reward", "critic"}
    before = {name: p.detach().clone() for name, p in recipe.model.named_parameters()}
    heads = (recipe.reward_head.linear.weight.clone(), recipe.value_head.linear.weight.clone())
    summary = recipe.train()
    after = dict(recipe.model.named_parameters())
    role = {name: next((r for r in ("policy", "reference", "reward", "critic") if f".{r}." in name), "base")
            for name in before}  # fmt: skip
    changed = {r: [not torch.equal(before[n], after[n]) for n in before if role[n] == r] for r in set(role.values())}
    assert not any(changed["base"]) and len(changed["base"]) > 10  # the base is bit-identical
    assert not any(changed["reference"]) and not any(changed["reward"])
    assert any(changed["policy"]) and any(changed["critic"])
    assert torch.equal(recipe.reward_head.linear.weight, heads[0])
    assert not torch.equal(recipe.value_head.linear.weight, heads[1])
    row = summary["log"][0]
    assert row["kl"] == 0.0  # the policy IS the reference before its first update
    assert {"reward", "entropy", "value_loss", "policy_loss", "sft_loss", "rude_share"} <= set(row)
    assert 0 <= row["rude_share"] <= 1 and row["sft_loss"] > 0


def _ppo_state(workspace: Workspace) -> tuple[dict[str, torch.Tensor], list[dict]]:  # type: ignore[type-arg]
    from safetensors.torch import load_file

    folder = workspace.adapter("ppo")
    weights = load_file(folder / "adapter_model.safetensors") | {
        f"critic.{k}": v for k, v in load_file(folder / "critic" / "adapter_model.safetensors").items()
    }
    weights["value_head"] = load_file(folder / "critic" / "score.safetensors")["weight"]
    return weights, json.loads((folder / "run.json").read_text(encoding="utf-8"))["log"]


def test_ppo_resumed_after_kill_9_equals_an_uninterrupted_run(ppo_workspace: Workspace, rlhf_config: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    from wechat_avatar.eval.metrics import is_rude
    from wechat_avatar.train.ppo import run_ppo

    cfg = load_config(rlhf_config)  # 2 steps, a checkpoint after each
    other = Workspace(Path(shutil.copytree(ppo_workspace.root, tmp_path / "other")))
    run_ppo(ppo_workspace, cfg, log=lambda line: None, rude=is_rude)  # the CLI's rude check, as below
    whole, whole_log = _ppo_state(ppo_workspace)
    # the other run is `train ppo` in a child process, killed with SIGKILL once its first checkpoint is complete
    command = [sys.executable, "-m", "wechat_avatar", "train", "ppo", "--workspace", str(other.root),
               "--config", str(rlhf_config)]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = other.adapter("ppo") / "checkpoints" / "step-1" / "state.json"
    deadline = time.monotonic() + 600
    while not first.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.kill()
    assert child.wait() == -signal.SIGKILL, "the child ended before it could be killed after step 1"
    assert not (other.adapter("ppo") / "run.json").exists()  # it never got to the end
    _, summary = run_ppo(other, cfg, resume=True, log=lambda line: None, rude=is_rude)
    assert summary["resumed_from"] == "step-1"
    resumed, resumed_log = _ppo_state(other)
    assert resumed_log == whole_log and len(whole_log) == 2
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert whole_log[1]["kl"] != 0.0  # step 2 sampled from an updated policy


# --- DPO and GRPO through TRL, a few steps ---------------------------------------------------------------------------


def _changed_from_sft(workspace: Workspace, name: str) -> bool:
    from safetensors.torch import load_file

    sft = load_file(workspace.adapter("sft") / "adapter_model.safetensors")
    trained = load_file(workspace.adapter(name) / "adapter_model.safetensors")
    assert trained.keys() == sft.keys()  # the same adapter, trained further (not TRL's "ref" copy)
    return any(not torch.equal(sft[k], trained[k]) for k in sft)


def test_dpo_trains_the_sft_adapter_on_the_pairs(ppo_workspace: Workspace, rlhf_config: Path) -> None:
    from wechat_avatar.train.dpo import run_dpo

    path, summary = run_dpo(ppo_workspace, load_config(rlhf_config), log=lambda line: None)
    assert summary["steps"] == 2 and summary["pairs"] == 48
    assert summary["pairs_truncated"] > 0  # contexts longer than max_length 96 lost their oldest turns
    assert all("loss" in row and "rewards/margins" in row for row in summary["log"])
    assert _changed_from_sft(ppo_workspace, "dpo")
    assert json.loads((path / "run.json").read_text(encoding="utf-8"))["stage"] == "dpo"


def test_grpo_trains_with_the_reward_model_as_reward(ppo_workspace: Workspace, rlhf_config: Path) -> None:
    from wechat_avatar.train.grpo import reward_function, run_grpo

    cfg = load_config(rlhf_config)
    score = reward_function(ppo_workspace, cfg, ppo_workspace.adapter("reward"))
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "胡三行:你有病吧"}]
    rude, gentle = score([prompt, prompt], [[{"role": "assistant", "content": c}] for c in (RUDE, GENTLE)])
    assert gentle > rude  # the reward model trained above, called as GRPO calls it
    path, summary = run_grpo(ppo_workspace, cfg, log=lambda line: None)
    assert summary["steps"] == 2 and len(summary["log"]) == 2
    assert json.loads((path / "run.json").read_text(encoding="utf-8"))["reward_from"].endswith("reward")
    assert all("reward" in row and "loss" in row for row in summary["log"])
    assert _changed_from_sft(ppo_workspace, "grpo")
