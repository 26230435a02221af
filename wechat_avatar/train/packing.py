"""Packing short chat samples into full rows, with attention kept inside each sample.

TRL's packing ("bfd") flattens a whole batch into ONE padding-free sequence, which is right
for flash-attention's variable-length kernels but makes SDPA/eager attention (CPU, most
laptops) quadratic in batch x length. Here each row is packed separately instead: samples
sit end to end in rows of at most `capacity` tokens (best-fit decreasing), each sample's
position ids restart at 0, and no attention mask is passed, so transformers derives a
block-diagonal causal mask from the restarting positions (masking_utils'
find_packed_sequence_indices). Rows are padded only to the longest row of the batch.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

from wechat_avatar.train.data import IGNORE


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Sample indices per row: longest first, each into the fullest row it still fits."""
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, row index), sorted
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        need = min(lengths[i], capacity)
        at = bisect.bisect_left(free, (need, -1))
        if at < len(free):
            space, row = free.pop(at)
            rows[row].append(i)
        else:
            space, row = capacity, len(rows)
            rows.append([i])
        if space - need > 0:
            bisect.insort(free, (space - need, row))
    return rows


def pack(columns: dict[str, list[list[int]]], capacity: int, seed: int) -> dict[str, list[list[int]]]:
    """input_ids/labels samples -> packed rows with input_ids, labels and restarting position_ids."""
    ids, labels = columns["input_ids"], columns["labels"]
    rows = best_fit_decreasing([len(x) for x in ids], capacity)
    random.Random(seed).shuffle(rows)  # BFD sorts by length; rows should not come long-to-short
    out: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        out["input_ids"].append([t for i in row for t in ids[i]])
        out["labels"].append([t for i in row for t in labels[i]])
        out["position_ids"].append([p for i in row for p in range(len(ids[i]))])
    return out


class PackedCollator:
    """Pads rows to the batch's longest (a multiple of 8); padding forms its own block with no loss."""

    def __init__(self, pad_id: int, multiple: int = 8) -> None:
        self.pad_id, self.multiple = pad_id, multiple

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        width += -width % self.multiple
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for r in rows:
            gap = width - len(r["input_ids"])
            batch["input_ids"].append(r["input_ids"] + [self.pad_id] * gap)
            batch["labels"].append(r["labels"] + [IGNORE] * gap)
            positions = r.get("position_ids") or list(range(len(r["input_ids"])))
            batch["position_ids"].append(positions + list(range(gap)))
        return {key: torch.tensor(value) for key, value in batch.items()}
