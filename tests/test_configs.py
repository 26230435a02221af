"""Shipped config files load through the code that reads them: accelerate's launcher, our config class.

Multi-GPU runs cannot happen here, so each accelerate file goes as far as it can without GPUs:
accelerate's own loader, then `accelerate launch`'s own validation and environment (what the
training processes would receive), and for DeepSpeed accelerate's DeepSpeedPlugin built from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType

from wechat_avatar.config import load_config, preset_names

ROOT = Path(__file__).parent.parent
ACCELERATE = ROOT / "configs" / "accelerate"
EXPECTED = {
    "ddp": DistributedType.MULTI_GPU,
    "deepspeed_zero2": DistributedType.DEEPSPEED,
    "deepspeed_zero3": DistributedType.DEEPSPEED,
    "fsdp": DistributedType.FSDP,
}


def _launch(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, str]]:
    """What `accelerate launch --config_file configs/accelerate/NAME.yaml -m wechat_avatar …` resolves
    (its private validation step is the one the real command runs), and its processes' environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    monkeypatch.chdir(ROOT)  # the files name paths relative to the repository root, as the README runs them
    argv = ["--config_file", f"configs/accelerate/{name}.yaml", "-m", "wechat_avatar", "train", "sft"]
    args, defaults, mixed_from_file = _validate_launch_command(launch_command_parser().parse_args(argv))
    if not args.use_deepspeed:
        return args, prepare_multi_gpu_env(args)
    fields = [*defaults.deepspeed_config, *(["mixed_precision"] if mixed_from_file else [])]
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)  # as launch_command() sets it
    return args, prepare_deepspeed_cmd_env(args)[1]


def test_every_accelerate_file_is_expected() -> None:
    assert sorted(p.stem for p in ACCELERATE.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_file_loads_and_says_how_to_use_it(name: str) -> None:
    path = ACCELERATE / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig) and config.distributed_type == EXPECTED[name]
    assert config.num_machines == 1 and config.num_processes >= 2 and not config.use_cpu
    # the file opens with the command that uses it
    head = path.read_text(encoding="utf-8").split("\ncompute_environment")[0]
    assert f"accelerate launch --config_file configs/accelerate/{name}.yaml -m wechat_avatar train sft" in head
    # accelerate copies nested keys onto its arguments without a word: a misspelt key would do nothing
    from accelerate.commands.launch import launch_command_parser

    known = {action.dest for action in launch_command_parser()._actions}
    nested = [*config.deepspeed_config, *config.fsdp_config]
    assert not [key for key in nested if key not in known], "keys accelerate launch does not read"


@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_torch_distributed_files_launch_in_bf16(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args, env = _launch(name, monkeypatch)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert args.multi_gpu if name == "ddp" else args.use_fsdp


def test_fsdp_shards_decoder_layers_for_lora(monkeypatch: pytest.MonkeyPatch) -> None:
    _, env = _launch("fsdp", monkeypatch)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "1"
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD" and env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen2DecoderLayer"  # the GPU presets are Qwen2.5
    assert env["FSDP_STATE_DICT_TYPE"] == "SHARDED_STATE_DICT" and env["FSDP_USE_ORIG_PARAMS"] == "true"
    # the recipe turns on the Trainer's activation checkpointing on GPUs; transformers refuses both
    assert env["FSDP_ACTIVATION_CHECKPOINTING"] == "false"


@pytest.mark.parametrize(("name", "stage"), [("deepspeed_zero2", 2), ("deepspeed_zero3", 3)])
def test_deepspeed_file_builds_its_plugin(name: str, stage: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from accelerate.utils import DeepSpeedPlugin

    args, env = _launch(name, monkeypatch)
    assert args.use_deepspeed
    json_file = ROOT / load_config_from_file(str(ACCELERATE / f"{name}.yaml")).deepspeed_config["deepspeed_config_file"]
    settings = json.loads(json_file.read_text(encoding="utf-8"))
    assert settings["zero_optimization"]["stage"] == stage
    # "auto": the preset (batch size, grad_accum, clipping, bf16) stays the one place these are set
    auto = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping")
    assert all(settings[key] == "auto" for key in auto) and settings["bf16"]["enabled"] == "auto"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()  # refuses accelerate-side settings that the JSON would silently override
    assert plugin.zero_stage == stage and plugin.deepspeed_config["zero_optimization"]["stage"] == stage
    if stage == 3:
        assert settings["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True  # savable adapter


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_through_the_config_class(name: str) -> None:
    cfg = load_config(None, preset=name)
    assert cfg.preset == name
    text = (ROOT / "wechat_avatar" / "presets" / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.startswith(f"# {name}:") and "wechat-avatar train sft" in text.split("\nmodel:")[0]
