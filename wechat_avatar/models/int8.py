"""int8 weights for CPU serving: optimum-quanto's weight-only qint8, saved and reloaded as safetensors.

Why quanto and not torch's own `torch.ao.quantization.quantize_dynamic` (measured on SmolLM2-135M,
2 shared cores, greedy, 32 tokens; docs/export.md has the benchmark's figures):
- quanto stores int8 weights with per-channel scales in plain safetensors plus a quantization map
  (`quanto_qmap.json`): the folder is 2-3x smaller on disk and in memory, holds no pickle, and reloads
  with public quanto calls. quantize_dynamic's packed weights can only be pickled (torch.save).
- quanto is weight-only, so replies stay the fp32 model's: last-token logits within 0.7 of fp32's
  (range -13..31) with the same greedy token. quantize_dynamic also quantises activations per
  tensor: logits off by about 10 and greedy replies that part from fp32's after three tokens.
- torch 2.13 marks torch.ao.quantization deprecated ("will be removed"; it points to torchao).
The price: on these CPUs quanto's matmul dequantises each weight before an fp32 matmul (its int8
kernel, `_weight_int8pack_mm`, is used for bfloat16 activations only, and bfloat16 matmuls are slow
here), so int8 generation is slower than fp32; quantize_dynamic's fbgemm kernels ran 1.3-2x faster
than fp32. int8 here buys size (linear weights in a quarter of fp32's disk and memory), not speed.
lm_head stays in full precision: quantising it would untie it from the embedding (stored twice) and
the output layer is the most sensitive one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from wechat_avatar.errors import ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

QMAP_FILE = "quanto_qmap.json"  # quanto's own name: its QuantizedModelForCausalLM reloads the folder too
KEEP = ["lm_head"]  # modules left in full precision


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Quantise every linear layer but lm_head to int8 in place (frozen: the int8 weights are final)."""
    from optimum.quanto import freeze, qint8, quantize

    quantize(model, weights=qint8, exclude=KEEP)
    freeze(model)
    return model


def save_int8(model: PreTrainedModel, folder: Path) -> None:
    """save_pretrained's weights (int8 data and scales as tensors) plus the map that requantize needs."""
    from optimum.quanto import quantization_map

    model.save_pretrained(folder)
    (folder / QMAP_FILE).write_text(json.dumps(quantization_map(model), indent=1), encoding="utf-8")


def load_int8(folder: Path) -> PreTrainedModel:
    """An int8 folder back as a plain transformers model with quanto layers, in eval mode, on the CPU."""
    import torch
    from accelerate import init_empty_weights
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    weights = folder / "model.safetensors"
    if not (folder / QMAP_FILE).is_file() or not weights.is_file():
        raise ModelError(f"{folder} is not a complete int8 export (no {QMAP_FILE} or model.safetensors)",
                         hint="export it again with `wechat-avatar export --quantize int8 --force`")  # fmt: skip
    with init_empty_weights():  # no random init: every weight comes from the file
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    qmap = json.loads((folder / QMAP_FILE).read_text(encoding="utf-8"))
    requantize(model, load_file(weights), qmap, device=torch.device("cpu"))
    model.tie_weights()  # the embedding and the (unquantised) lm_head share one tensor, as saved
    return model.eval()
