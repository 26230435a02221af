"""`rlhf sample`: k candidate replies per held-out context from the SFT model, into rlhf/ranked.jsonl.

The contexts are the dataset's held-out samples (dataset/messages/test.jsonl, the same split eval
scores), a seeded subset of at most `rlhf.contexts`, plus — always — every sample of a held-out
session that opens with a provocation (`provoke.is_provocation`, read from meta.jsonl's sessions)
and every context of the probe file. Each context becomes a ranked-file `source`; the model is asked
the prompt `ranked.conversation` builds back from it (what the dataset would have asked), and its k
candidates come from the same generation code as eval and serve (`generate.generate_batch`), each
row sampled with its own seed: candidate j of context i with seed + i·k + j, in any batch.

Candidates are written unscored (all 0, no judge): `rlhf judge` scores them. A context a person has
labeled is never replaced.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.splits import self_name
from wechat_avatar.errors import DatasetError, ModelError
from wechat_avatar.generate import BUBBLE, RowSampling, bubbles, generate_batch
from wechat_avatar.rlhf import provoke
from wechat_avatar.rlhf.ranked import Ranked, conversation, source_of, update
from wechat_avatar.workspace import Workspace

Progress = Callable[[str, int | None], Callable[[int], None]]
EMPTY = "…"  # a candidate that came out empty (serve shows the same); an empty candidate is a bad record
SELECT_SEED = 0  # which held-out contexts are picked never depends on a sampling setting


class Context(NamedTuple):
    source: str  # ranked-file source: "name:text" lines
    provocation: bool
    origin: str  # "test:LINE" (0-based line of test.jsonl) or "probe"


class Sampled(NamedTuple):
    path: Path
    contexts: int
    provocations: int
    probes: int
    candidates: int
    kept_labeled: int  # contexts already labeled by a person, left as they were
    skipped: list[str]  # one line per held-out sample that could not be read


def held_out(workspace: Workspace, name: str) -> tuple[list[Context], list[str]]:
    """Every held-out sample as a context, marked if its session opens with a provocation; and one line
    per unreadable sample (skipped)."""
    path = workspace.split("test")
    if not path.is_file():
        raise DatasetError(f"no held-out split at {path}",
                           hint=f"run `wechat-avatar dataset --workspace {workspace}` first")  # fmt: skip
    samples, skipped = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        try:
            messages = json.loads(line)["messages"]
            if len(messages) < 2 or messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
                raise ValueError("it does not end with a user turn and the assistant's reply")
            samples.append((i, source_of(messages[:-1], name), str(messages[-1]["content"])))
        except (ValueError, KeyError, TypeError, IndexError) as err:
            skipped.append(f"{path.name}:{i + 1}: {err}")
    sessions = _sessions(workspace, len(samples))
    opened: dict[str, bool] = {}  # session -> whether its first sample answers a provocation
    for (_, source, reply), session in zip(samples, sessions, strict=True):
        if session not in opened:
            opening = next((text for who, _, text in map(_speaker, source.split("\n")) if who != name), "")
            opened[session] = provoke.is_provocation(opening, reply)
    contexts = [Context(source, opened[session], f"test:{i}")
                for (i, source, _), session in zip(samples, sessions, strict=True)]  # fmt: skip
    return contexts, skipped


def _speaker(line: str) -> tuple[str, str, str]:
    return line.partition(":")


def _sessions(workspace: Workspace, n: int) -> list[str]:
    """The session of each held-out sample (meta.jsonl's test rows, in the order test.jsonl has them);
    without a matching meta.jsonl each sample is its own session."""
    meta = workspace.dataset_meta
    if meta.is_file():
        rows = [json.loads(line) for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
        sessions = [str(row.get("session")) for row in rows if row.get("split") == "test"]
        if len(sessions) == n:
            return sessions
    return [f"sample-{i}" for i in range(n)]


def choose(contexts: list[Context], limit: int, probes: list[str]) -> list[Context]:
    """Provocations and probes always; of the rest a seeded subset up to `limit` (0 = all); each source once."""
    rest = [c for c in contexts if not c.provocation]
    if limit and len(rest) > limit:
        picked = set(random.Random(SELECT_SEED).sample(range(len(rest)), limit))
        rest = [c for i, c in enumerate(rest) if i in picked]
    chosen = [c for c in contexts if c.provocation or c in rest] + [Context(p, True, "probe") for p in probes]
    unique: dict[str, Context] = {}
    for c in chosen:
        unique.setdefault(c.source, c)
    return list(unique.values())


def sample(workspace: Workspace, cfg: AvatarConfig, adapter: Path | None = None,
           progress: Progress | None = None) -> Sampled:  # fmt: skip
    """Sample `cfg.rlhf.k` candidates per chosen context with `adapter` (default: the trained SFT adapter)."""
    from wechat_avatar.models.load import load_for_inference

    r = cfg.rlhf
    name = self_name(workspace)
    everything, skipped = held_out(workspace, name)
    chosen = choose(everything, r.contexts, provoke.probes(workspace.probes))
    adapter = adapter or workspace.trained_adapter()
    if adapter is None:
        raise ModelError(f"no trained SFT adapter in {workspace.adapters}: candidates come from the SFT model",
                         hint=f"run `wechat-avatar train sft -w {workspace}` first, or pass --adapter")  # fmt: skip
    loaded = load_for_inference(workspace, cfg, adapter)
    system = cfg.dataset.system_prompt.format(name=name)
    rows = [(i, j) for i in range(len(chosen)) for j in range(r.k)]
    texts: dict[tuple[int, int], str] = {}
    advance = progress("rlhf sample", len(rows)) if progress else (lambda n: None)
    for start in range(0, len(rows), r.batch_size):
        batch = rows[start : start + r.batch_size]
        conversations = [conversation(chosen[i].source, name, system, cfg.dataset.context_window) for i, _ in batch]
        how = [RowSampling(r.temperature, r.top_p, r.seed + i * r.k + j) for i, j in batch]
        out = generate_batch(loaded.model, loaded.tokenizer, conversations, max_new_tokens=r.max_new_tokens,
                             temperature=0.0, top_p=1.0, seed=None, rows=how)  # fmt: skip
        for row, generated in zip(batch, out, strict=True):
            texts[row] = BUBBLE.join(bubbles(generated.text)) or EMPTY
        advance(len(batch))
    records = [Ranked(c.source, tuple(texts[i, j] for j in range(r.k)), (0.0,) * r.k, origin="sample",
                      provocation=c.provocation) for i, c in enumerate(chosen)]  # fmt: skip
    _, kept = update(workspace.ranked, records)
    return Sampled(workspace.ranked, len(chosen), sum(c.provocation and c.origin != "probe" for c in chosen),
                   sum(c.origin == "probe" for c in chosen), len(rows), kept, skipped)  # fmt: skip
