"""One entry point for every synthetic export format, all written from the same history.

    synth_export(Path("out"), "pc3", messages=1500, seed=3).path   # what to hand to `ingest`

The cast and the message stream depend only on (messages, seed), so an Android export
and a PC 3.x export of the same arguments hold the same persona and the same messages.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wechat_avatar.errors import UsageError
from wechat_avatar.synth.android import CHUNK, manifest, synth_android
from wechat_avatar.synth.chatlog import write_chatlog
from wechat_avatar.synth.history import Event, History
from wechat_avatar.synth.memotrace import write_memotrace
from wechat_avatar.synth.pc3 import write_pc3
from wechat_avatar.synth.pc4 import write_pc4
from wechat_avatar.synth.persona import make_cast
from wechat_avatar.synth.pywxdump import write_pywxdump

FORMATS = ("android", "pc3", "pc4", "pywxdump", "memotrace", "chatlog")
_WRITERS = {
    "pc3": write_pc3,
    "pc4": write_pc4,
    "pywxdump": lambda out, cast, events, n: write_pywxdump(out, cast, events),
    "memotrace": write_memotrace,
    "chatlog": lambda out, cast, events, n: write_chatlog(out, cast, events),
}


@dataclass(frozen=True)
class SynthExport:
    format: str
    out: Path
    path: Path  # what a user hands to `wechat-avatar ingest`
    manifest_path: Path
    messages: int
    self_wxid: str


def synth_export(
    out: Path,
    fmt: str = "android",
    messages: int = 5000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    leave_out_newest: int = 0,
) -> SynthExport:
    """`leave_out_newest`: the same history exported that many messages earlier (a grown export's
    predecessor: its messages have the same ids in the later one)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown synth format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if messages < 0 or not 0 <= leave_out_newest <= messages:
        raise UsageError(f"messages must be ≥ 0 and leave_out_newest within them, got {messages}, {leave_out_newest}")
    out = Path(out)
    if fmt == "android":
        r = synth_android(out, messages=messages, seed=seed, progress=progress, leave_out_newest=leave_out_newest)
        return SynthExport(fmt, r.out, r.out, r.manifest_path, r.messages, r.self_wxid)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)  # the same draws, in the same order, as synth_android
    cast = make_cast(rng)
    history = History(cast, messages, rng, stop=messages - leave_out_newest)
    path = _WRITERS[fmt](out, cast, _ticking(history.events(), progress), messages)
    manifest_path = out / "synth.json"
    made = manifest(cast, history, format=fmt, seed=seed, ingest_path=str(path.relative_to(out)))
    manifest_path.write_text(json.dumps(made, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return SynthExport(fmt, out, path, manifest_path, history.count, cast.me.wxid)


def _ticking(events: Iterable[Event], progress: Callable[[int], None] | None) -> Iterator[Event]:
    n = 0
    for n, event in enumerate(events, start=1):
        if progress is not None and n % CHUNK == 0:
            progress(CHUNK)
        yield event
    if progress is not None and n % CHUNK:
        progress(n % CHUNK)
