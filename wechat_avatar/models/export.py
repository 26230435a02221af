"""`wechat-avatar export`: the base with its LoRA adapter merged in, as a standard Hugging Face folder.

    wechat-avatar export --out DIR                  # fp32 (the base's dtype): transformers, vLLM, llama.cpp
    wechat-avatar export --out DIR --quantize int8  # for CPU serving with `serve --model DIR` (models/int8.py)

A merged folder holds model.safetensors, config.json, generation_config.json (eos and pad set, so
vLLM and `generate` stop where the avatar's turn ends), the tokenizer with the chat template the
dataset trained with (ChatML for a base that has none, as `load_base` gives it), and export.json:
what made it (base, adapter, the adapter's dataset hash, quantize, bytes on disk). It loads with
plain `AutoModelForCausalLM.from_pretrained(DIR)`: no code of ours, no remote code. The int8
folder's weights are quanto's int8 tensors and need `serve --model DIR` (or optimum-quanto).
The folder is written beside DIR first and moved into place whole: a failed export leaves DIR as it was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from wechat_avatar.config import AvatarConfig
from wechat_avatar.errors import ModelError, UsageError
from wechat_avatar.models.load import EXPORT_FILE, adapter_record, load_for_inference, merged
from wechat_avatar.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

QUANTIZE = ("int8",)  # --quantize values; 4-bit is a load-time choice (serve --load-in-4bit), not a file format


class Exported(NamedTuple):
    path: Path
    record: dict[str, Any]  # what export.json holds


def check_request(out: Path, quantize: str | None, force: bool) -> None:
    """Refuse before loading anything: an unknown --quantize, or an --out that holds something."""
    if quantize is not None and quantize not in QUANTIZE:
        raise UsageError(f"--quantize: unknown value {quantize!r}; choose {', '.join(QUANTIZE)} (or leave it "
                         "out for full precision)", hint="4-bit is for serving: `serve --load-in-4bit`")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} already exists and is not empty", hint="pass --force to replace it")


def export(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None, out: Path, *,
           quantize: str | None = None, force: bool = False) -> Exported:  # fmt: skip
    """Merge `adapter` (default: the workspace's trained SFT adapter) into its base and save it to `out`."""
    check_request(out, quantize, force)
    adapter = adapter or workspace.trained_adapter()
    if adapter is None:
        raise ModelError(f"no trained adapter in {workspace.adapter()}", hint="run `wechat-avatar train sft` "
                         "first, or pass --adapter DIR")  # fmt: skip
    run = adapter_record(adapter)  # a folder without an adapter fails here, before the base loads
    # merged in full precision even where training held the base in 4-bit (QLoRA): NF4 weights do not save
    full = cfg.model_copy(update={"model": cfg.model.model_copy(update={"load_in_4bit": False})})
    loaded = load_for_inference(workspace, full, adapter)
    model = merged(loaded).model  # W + B·A·scale in each adapted layer; the LoRA modules go
    _set_generation(model, loaded.tokenizer)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if quantize == "int8":
        from wechat_avatar.models.int8 import quantize_int8, save_int8

        save_int8(quantize_int8(model), partial)
    else:
        model.save_pretrained(partial)
    loaded.tokenizer.save_pretrained(partial)
    _legacy_rope_theta(partial / "config.json")
    record = {
        "base": cfg.model.base, "base_source": run.get("base_source"), "adapter": str(adapter.resolve()),
        "dataset": run.get("dataset"), "quantize": quantize, "dtype": str(model.dtype).removeprefix("torch."),
        "bytes": _bytes(partial),
    }  # fmt: skip
    (partial / EXPORT_FILE).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return Exported(out, record)


def _set_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """generation_config.json says where a reply ends (the tokenizer's eos and ChatML's <|im_end|>, as
    generate.stop_ids does for our own serving) and what pads: vLLM and plain `generate` read it."""
    eos = {tokenizer.eos_token_id}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        eos.add(im_end)
    ids = sorted(i for i in eos if i is not None)
    model.generation_config.eos_token_id = ids[0] if len(ids) == 1 else ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def _legacy_rope_theta(config: Path) -> None:
    """Also write `rope_theta` at the top of config.json, where transformers 4 kept it: transformers 5 nests
    it in `rope_parameters`, and tools that read the old key (llama.cpp's converter runs on transformers 4)
    otherwise fall back to 10000, a rotary base SmolLM2 (1e5) and Qwen2.5 (1e6) were not trained with."""
    data = json.loads(config.read_text(encoding="utf-8"))
    theta = (data.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None and "rope_theta" not in data:
        data["rope_theta"] = theta
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
