"""How the big jobs (ingest, the dataset build) run: their worker processes, their garbage collector."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# fork where the OS has it: a worker starts at once with every module already imported (a
# spawned one imports them all again, 0.3-0.5 s before it does any work, on the same cores).
# Safe for these workers: they never touch the parent's SQLite handles (the ingest's open
# transaction, the dataset's reader) and leave through os._exit without closing them; and
# each starts with `fresh_std_streams`.
START_METHOD = "fork" if sys.platform == "linux" else "spawn"


def fresh_std_streams() -> None:
    """Run first in a forked worker: stdout and stderr as new objects on the same descriptors.

    A worker flushes them on its way out. The copies it inherited may hold a lock that a
    thread of the parent (the progress bar, redrawing) held at the fork, and which nothing in
    the child would ever release.
    """
    if START_METHOD == "fork":
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115  lives as long as the worker
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect cycles rarely during a big job (forked workers inherit this): it allocates
    millions of short-lived objects, hardly any in cycles, and the default thresholds ran
    the collector thousands of times over them (2-3 % of an ingest's CPU at 1M messages)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(200_000, 100, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
