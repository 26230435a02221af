"""`wechat-avatar export`: the merged folder is a plain Hugging Face model that answers as base + adapter
does; the int8 folder is smaller and close to it; `serve --model` and `--load-in-4bit` load and reply;
every refusal is one line and a non-zero exit. The tiny model and a few tokens keep it quick.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_cli

from wechat_avatar.config import AvatarConfig, load_config
from wechat_avatar.errors import ModelError
from wechat_avatar.models.load import EXPORT_FILE, RUN_FILE, Loaded, load_for_inference, load_for_serving
from wechat_avatar.serve.engine import Engine, Sampling
from wechat_avatar.workspace import Workspace

SAID = ["在吗", "今天晚上一起吃饭吗", "哈哈哈"]


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("export") / "workspace"))


@pytest.fixture(scope="module")
def cfg(tiny_config: Path) -> AvatarConfig:
    return load_config(tiny_config)


def export_cli(workspace: Workspace, config: Path, out: Path, *args: str) -> Any:
    return run_cli("export", "--workspace", workspace.root, "--config", config, "--out", out, *args)


@pytest.fixture(scope="module")
def merged(workspace: Workspace, tiny_config: Path) -> Path:
    out = workspace.root.parent / "merged"
    result = export_cli(workspace, tiny_config, out)
    assert result.returncode == 0, result.stderr
    assert f"to {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def int8(workspace: Workspace, tiny_config: Path) -> Path:
    out = workspace.root.parent / "int8"
    out.mkdir()
    (out / "old.txt").write_text("from an earlier export")
    result = export_cli(workspace, tiny_config, out, "--quantize", "int8", "--force")
    assert result.returncode == 0, result.stderr
    assert not (out / "old.txt").exists()  # --force replaced the folder whole
    return out


@pytest.fixture(scope="module")
def adapted(workspace: Workspace, cfg: AvatarConfig) -> Loaded:
    return load_for_inference(workspace, cfg, workspace.trained_adapter())


def persona_prompts(workspace: Workspace, cfg: AvatarConfig) -> list[list[dict[str, str]]]:
    """The conversations serving builds (system prompt, `name:content` lines), one per friend line."""
    from wechat_avatar.serve.engine import Persona

    persona = Persona.of(workspace, cfg)
    return [persona.prompt([persona.line(False, "胡三行", text)]) for text in SAID]


def encoded(tokenizer: Any, conversation: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    return tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)  # fmt: skip


def last_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits[0, -1]


def greedy_ids(model: Any, tokenizer: Any, batch: dict[str, torch.Tensor], n: int = 8) -> list[int]:
    with torch.no_grad():  # min_new_tokens: compare n real tokens, not an early stop
        out = model.generate(**batch, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    return out[0, batch["input_ids"].shape[1] :].tolist()


# --- the merged folder ------------------------------------------------------------------------------------------


def test_merged_folder_loads_with_plain_transformers_and_answers_as_base_plus_adapter(
    merged: Path, workspace: Workspace, cfg: AvatarConfig, adapted: Loaded
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(merged, trust_remote_code=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())  # merged, not wrapped
    for conversation in persona_prompts(workspace, cfg):
        ours = adapted.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        assert tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) == ours
        batch = encoded(tokenizer, conversation)
        torch.testing.assert_close(last_logits(model, batch), last_logits(adapted.model, batch), atol=1e-4, rtol=1e-4)
        assert greedy_ids(model, tokenizer, batch) == greedy_ids(adapted.model, adapted.tokenizer, batch)
    # the adapter changed the base: the merge carries it (a merge that dropped it would also "load")
    bare = AutoModelForCausalLM.from_pretrained(workspace.tiny_model).eval()
    assert not torch.allclose(last_logits(bare, batch), last_logits(model, batch), atol=1e-4)


def test_merged_folder_says_where_replies_end_and_what_made_it(merged: Path, workspace: Workspace) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(merged)
    generation = GenerationConfig.from_pretrained(merged)
    eos = generation.eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])
    assert generation.pad_token_id == tokenizer.pad_token_id is not None
    record = json.loads((merged / EXPORT_FILE).read_text(encoding="utf-8"))
    run = json.loads((workspace.trained_adapter() / RUN_FILE).read_text(encoding="utf-8"))
    assert record["base"] == "builtin:tiny-qwen2" and record["quantize"] is None
    assert record["dataset"] == run["dataset"] and Path(record["adapter"]) == workspace.trained_adapter().resolve()
    on_disk = sum(f.stat().st_size for f in merged.iterdir() if f.name != EXPORT_FILE)
    assert record["bytes"] == on_disk
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {
        f.name for f in merged.iterdir()}  # fmt: skip
    # the rotary base also where transformers 4 and llama.cpp's converter read it, and transformers 5 still loads
    config = json.loads((merged / "config.json").read_text(encoding="utf-8"))
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]


def test_serving_folds_the_adapter_in_unless_told_not_to(workspace: Workspace, cfg: AvatarConfig,
                                                          adapted: Loaded) -> None:  # fmt: skip
    from peft import PeftModel

    folded = load_for_serving(workspace, cfg, None)
    assert not isinstance(folded.model, PeftModel) and folded.adapter == workspace.trained_adapter()
    assert not any("lora" in name for name, _ in folded.model.named_parameters())
    apart = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"merge_adapter": False})})
    assert isinstance(load_for_serving(workspace, apart, None).model, PeftModel)
    for conversation in persona_prompts(workspace, cfg):
        batch = encoded(adapted.tokenizer, conversation)
        torch.testing.assert_close(last_logits(folded.model, batch), last_logits(adapted.model, batch),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        assert greedy_ids(folded.model, folded.tokenizer, batch) == greedy_ids(adapted.model, adapted.tokenizer, batch)


# --- int8 -------------------------------------------------------------------------------------------------------


def test_int8_folder_is_smaller_loads_for_serving_and_stays_close(
    int8: Path, merged: Path, workspace: Workspace, cfg: AvatarConfig
) -> None:
    from optimum.quanto import QModuleMixin

    assert (int8 / "model.safetensors").stat().st_size < (merged / "model.safetensors").stat().st_size
    record = json.loads((int8 / EXPORT_FILE).read_text(encoding="utf-8"))
    assert record["quantize"] == "int8" and record["bytes"] < json.loads((merged / EXPORT_FILE).read_text())["bytes"]
    small = load_for_serving(workspace, cfg, None, int8)
    full = load_for_serving(workspace, cfg, None, merged)
    quantised = [name for name, m in small.model.named_modules() if isinstance(m, QModuleMixin)]
    assert quantised and "lm_head" not in quantised
    for conversation in persona_prompts(workspace, cfg):
        batch = encoded(full.tokenizer, conversation)
        a, b = last_logits(small.model, batch), last_logits(full.model, batch)
        assert not torch.equal(a, b)  # int8 really is another model...
        torch.testing.assert_close(a, b, atol=0.05, rtol=0)  # ...close to fp32
    assert len(greedy_ids(small.model, small.tokenizer, batch)) == 8


def test_int8_cannot_also_load_in_4bit(int8: Path, workspace: Workspace, cfg: AvatarConfig) -> None:
    with pytest.raises(ModelError, match="already quantised to int8"):
        load_for_serving(workspace, cfg, None, int8, load_in_4bit=True)


# --- serving an export, and 4-bit -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter_engine(workspace: Workspace, cfg: AvatarConfig) -> Iterator[Engine]:
    engine = Engine.open(workspace, cfg, None)
    yield engine
    engine.close()


def replies(engine: Engine, workspace: Workspace, cfg: AvatarConfig, sampling: Sampling) -> list[Any]:
    return [engine.reply(c, sampling) for c in persona_prompts(workspace, cfg)]


def test_serve_model_replies_as_the_adapter_does(
    merged: Path, int8: Path, workspace: Workspace, cfg: AvatarConfig, adapter_engine: Engine
) -> None:
    greedy, sampled = Sampling(8, 0.0, 1.0, 0), Sampling(8, 1.0, 1.0, 7)  # sampled: text, not just whitespace
    engine = Engine.open(workspace, cfg, None, merged)
    try:
        assert engine.persona == adapter_engine.persona  # who answers still comes from the workspace
        assert str(merged) in engine.describe()
        for how in (greedy, sampled):
            assert replies(engine, workspace, cfg, how) == replies(adapter_engine, workspace, cfg, how)
        assert any(r.bubbles != ["…"] for r in replies(engine, workspace, cfg, sampled))
    finally:
        engine.close()
    engine = Engine.open(workspace, cfg, None, int8)
    try:
        assert all(r.completion_tokens > 0 for r in replies(engine, workspace, cfg, greedy))
    finally:
        engine.close()


def test_load_in_4bit_loads_and_generates_on_cpu(workspace: Workspace, cfg: AvatarConfig, adapted: Loaded) -> None:
    from bitsandbytes.nn import Linear4bit

    engine = Engine.open(workspace, cfg, None, load_in_4bit=True)
    try:
        model = engine.loaded.model
        assert any(isinstance(m, Linear4bit) for m in model.modules()) and engine.loaded.adapter is not None
        reply = engine.reply(persona_prompts(workspace, cfg)[0], Sampling(6, 0.0, 1.0, 0))
        assert reply.completion_tokens > 0 and reply.prompt_tokens > 0
        batch = encoded(adapted.tokenizer, persona_prompts(workspace, cfg)[0])
        torch.testing.assert_close(last_logits(model, batch), last_logits(adapted.model, batch), atol=0.5, rtol=0)
    finally:
        engine.close()


# --- refusals: one line each, non-zero exit, nothing loaded -----------------------------------------------------


def one_line_error(result: Any, says: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines), result.stderr


def test_export_refusals(workspace: Workspace, tiny_config: Path, dataset_workspace: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    one_line_error(export_cli(workspace, tiny_config, taken), "already exists and is not empty")
    assert (taken / "keep.txt").read_text() == "mine"
    one_line_error(export_cli(workspace, tiny_config, tmp_path / "a", "--quantize", "int4"), "unknown value 'int4'")
    untrained = run_cli("export", "--workspace", dataset_workspace, "--config", tiny_config, "--out", tmp_path / "b")
    one_line_error(untrained, "no trained adapter")
    assert "train sft" in untrained.stderr
    one_line_error(export_cli(workspace, tiny_config, tmp_path / "c", "--adapter", tmp_path), "holds no LoRA adapter")
    misfit = Path(shutil.copytree(workspace.trained_adapter(), tmp_path / "misfit"))
    settings = json.loads((misfit / "adapter_config.json").read_text())
    (misfit / "adapter_config.json").write_text(json.dumps({**settings, "target_modules": ["no_such_proj"]}))
    one_line_error(export_cli(workspace, tiny_config, tmp_path / "d", "--adapter", misfit), "does not fit")
    assert not any(tmp_path.glob("[abcd]*"))  # no half-written export is left behind


def test_serve_refusals(workspace: Workspace, tiny_config: Path, merged: Path) -> None:
    both = run_cli("serve", "--workspace", workspace.root, "--config", tiny_config, "--port", "0",
                   "--adapter", workspace.trained_adapter(), "--model", merged)  # fmt: skip
    one_line_error(both, "--adapter and --model exclude each other")
    not_export = run_cli("serve", "--workspace", workspace.root, "--config", tiny_config, "--port", "0",
                         "--model", workspace.trained_adapter())  # fmt: skip
    one_line_error(not_export, "is not an export folder")
