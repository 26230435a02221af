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
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["windows", "all"], default="all")
    parser.parse_args()
    bench_windows()


if __name__ == "__main__":
    main()
