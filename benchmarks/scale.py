"""A decade of history: ingest and dataset at 1M, 3M and 10M messages, a grown export
re-ingested, and windows() alone on ever longer sessions, in one run.

    python benchmarks/scale.py [--sizes 1000000,3000000,10000000] [--keep DIR] [--grown 10000]
    python benchmarks/scale.py --only windows

For each size: synthesise (or reuse, with --keep) an Android export, ingest it and build the
dataset through the real CLI in child processes, timing each and sampling the peak RSS of
the process and its workers together. Then a grown export (the smallest size plus --grown new
messages, the same history family) is re-ingested into the smallest size's store and timed
against a full ingest of it. Prints seconds, messages/s, peak RSS, the largest/smallest cost
ratio (target: no more than the size ratio * 1.1, i.e. <= 11x for 10M/1M), re-ingest/full
(target <= 5 %) and windows() µs per line at 5k/20k/80k/320k lines (target: flat within 1.5x).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import run_child  # the sibling benchmark's child-process timer

from wechat_avatar.dataset.window import Line, context, runs, windows
from wechat_avatar.processes import quiet_gc

WINDOW_SIZES = (5_000, 20_000, 80_000, 320_000)


def quadratic_windows(session: list[Line], window: int) -> Iterator[tuple[list[list[Line]], list[Line]]]:
    """The baseline: windows() as it was, copying every earlier turn for each reply."""
    turns = runs(session)
    for k, reply in enumerate(turns):
        if reply[0].is_self and (seen := context(turns[:k], window)):
            yield seen, reply


def us_per_line(cut: Callable[..., Iterator[Any]], n: int, repeat: int = 3) -> float:
    """One session of n lines (you and a friend taking turns at random) through `cut`, best of
    `repeat`, in µs a line; the collector set as the dataset build sets it."""
    rng = random.Random(n)
    lines = [Line(i, rng.random() < 0.45, "友", "嗯嗯", "text", i * 1000) for i in range(n)]
    best = float("inf")
    with quiet_gc():
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in cut(lines, 10):
                pass
            best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def bench_windows() -> None:
    figures = {}
    for n in WINDOW_SIZES:
        figures[n] = us_per_line(windows, n)
        old = f"  (before: {us_per_line(quadratic_windows, n, 1):7.2f})" if n <= 20_000 else ""
        print(f"windows() {n:>9,} lines  {figures[n]:6.2f} µs/line{old}", flush=True)
    spread = max(figures.values()) / min(figures.values())
    print(f"windows() largest/smallest µs per line  {spread:.2f}x   (target <= 1.5)", flush=True)


CLI = [sys.executable, "-m", "wechat_avatar"]
SYNTH = "from pathlib import Path; from wechat_avatar.synth import synth_export; synth_export(Path({out!r}), 'android', messages={n}, seed=1, leave_out_newest={left})"  # noqa: E501


def synth(out: Path, n: int, left: int = 0) -> None:
    """An Android export of the first n - left messages of an n-message history (seed 1), unless kept."""
    if (out / "EnMicroMsg.db").exists() and (out / "synth.json").exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    seconds, _, _ = run_child([sys.executable, "-c", SYNTH.format(out=str(out), n=n, left=left)])
    print(f"synth    {n - left:>11,} messages  {seconds:8.1f} s", flush=True)


Timed = tuple[float, int, float]  # wall seconds, peak RSS (with workers), CPU seconds (with workers)


def ingest(export: Path, workspace: Path, *flags: str) -> Timed:
    return run_child([*CLI, "ingest", str(export / "EnMicroMsg.db"), str(export / "shared_prefs"),
                      "--workspace", str(workspace), *flags])  # fmt: skip


def dataset(workspace: Path) -> Timed:
    return run_child([*CLI, "dataset", "--workspace", str(workspace)])


def row(stage: str, n: int, timed: Timed) -> None:
    seconds, rss, cpu = timed
    print(f"{stage:<9} {n:>11,} messages  {seconds:8.1f} s  {n / seconds:>9,.0f} msgs/s  CPU {cpu:8.1f} s  "
          f"peak RSS {rss / 2**20:6.0f} MiB", flush=True)  # fmt: skip


def ratio(what: str, large: Timed, small: Timed, target: str) -> None:
    """Wall and CPU (the steadier on a shared machine: what other processes take is not counted)."""
    print(f"{what}  wall {large[0] / small[0]:6.2f}x  CPU {large[2] / small[2]:6.2f}x   (target {target})", flush=True)


def bench_sizes(sizes: list[int], grown: int, keep: Path) -> None:
    """Ingest and dataset per size; the smallest size's export is the history of size + grown
    with the newest `grown` left out, so that the grown export re-ingested into it is the same
    history exported later."""
    costs: dict[int, tuple[Timed, Timed]] = {}
    for i, n in enumerate(sizes):
        export, ws = keep / f"android-{n}", keep / f"ws-{n}"
        synth(export, n + grown if i == 0 else n, grown if i == 0 else 0)
        shutil.rmtree(ws, ignore_errors=True)
        costs[n] = ingest(export, ws), dataset(ws)
        row("ingest", n, costs[n][0])
        row("dataset", n, costs[n][1])
        if i == 0:
            bench_grown(keep, n, grown, ws)
        if i:
            shutil.rmtree(ws, ignore_errors=True)  # the big stores: disk is short
    small, large = min(costs), max(costs)
    if small != large:
        for j, stage in enumerate(("ingest", "dataset")):
            ratio(f"{stage:<8} {large:,}/{small:,}", costs[large][j], costs[small][j],
                  f"<= {large / small * 1.1:.1f}: linear")  # fmt: skip


def bench_grown(keep: Path, n: int, grown: int, ws: Path) -> None:
    """The grown export (n + grown messages) re-ingested into the store of the first n, against a
    fresh full ingest of it."""
    export, fresh = keep / f"android-{n}+{grown}", keep / f"ws-{n}+{grown}"
    synth(export, n + grown)
    shutil.rmtree(fresh, ignore_errors=True)
    full = ingest(export, fresh)
    row("full", n + grown, full)
    again = ingest(export, ws)
    row("re-ingest", n + grown, again)
    ratio("re-ingest of the grown export / full ingest", again, full, "<= 0.05")
    shutil.rmtree(fresh, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["windows", "sizes", "all"], default="all")
    parser.add_argument("--sizes", default="1000000,3000000,10000000", help="message counts, comma-separated")
    parser.add_argument("--grown", type=int, default=10_000, help="new messages in the grown export")
    parser.add_argument("--keep", type=Path, help="keep the exports here and reuse them next time")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # the CLI children run this checkout
    if args.only in ("windows", "all"):
        bench_windows()
    if args.only == "windows":
        return
    keep = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    keep.mkdir(parents=True, exist_ok=True)
    try:
        bench_sizes(sorted(int(n) for n in args.sizes.split(",")), args.grown, keep)
    finally:
        if args.keep is None:
            shutil.rmtree(keep, ignore_errors=True)


if __name__ == "__main__":
    main()
