"""`rlhf import FILE` / `rlhf export FILE`: ranked records in and out in the seed's own format.

FILE is JSON lines, or a JSON array of the same objects (the seed kept a .json file): export writes
an array when FILE ends in .json, JSON lines otherwise, with the seed's fields only
{"source", "resp1".."respK", "scores"} and scores as strings, as the seed wrote them. Import reads
either. Records a person already labeled in the workspace are never replaced by an import.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from wechat_avatar.errors import UsageError
from wechat_avatar.rlhf.ranked import RankedFile, atomic_write, update
from wechat_avatar.workspace import Workspace

SEED_ONLY = ("labeled", "origin", "provocation", "judge")


class Moved(NamedTuple):
    path: Path
    records: int  # imported (or exported)
    kept_labeled: int  # import: contexts already labeled in the workspace, left as they were
    problems: list[str]  # one line per bad record of FILE (import) or of ranked.jsonl (export), skipped


def import_file(workspace: Workspace, path: Path, *, labeled: bool = True) -> Moved:
    """FILE's good records merged into ranked.jsonl; `labeled` marks them as a person's (the seed's were)."""
    if not path.is_file():
        raise UsageError(f"no file at {path}", hint="pass a ranked file: JSON lines or a JSON array of "
                         '{"source", "resp1", …, "scores"}')  # fmt: skip
    read = RankedFile.read(path)
    incoming = [replace(r, labeled=r.labeled or labeled, origin=r.origin or "import") for r in read.records]
    if not incoming:
        raise UsageError(f"{path} holds no usable record" + (f" ({read.problems[0]})" if read.problems else ""),
                         hint='each record needs "source", resp1..respK and k "scores"')  # fmt: skip
    written, refused = update(workspace.ranked, incoming, over_labeled=False)
    return Moved(written.path, len(incoming) - refused, refused, read.problems)


def export_file(workspace: Workspace, path: Path) -> Moved:
    read = RankedFile.read(workspace.ranked)
    if not read.records:
        raise UsageError(f"nothing to export: {workspace.ranked} holds no record",
                         hint="run `wechat-avatar rlhf sample` and `rlhf judge` first")  # fmt: skip
    seed = [{key: value for key, value in r.to_json().items() if key not in SEED_ONLY} for r in read.records]
    if path.suffix == ".json":
        text = json.dumps(seed, ensure_ascii=False, indent=2) + "\n"
    else:
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in seed)
    atomic_write(path, text)
    return Moved(path, len(seed), 0, read.problems)
