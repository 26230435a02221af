"""How the project starts its worker processes (ingest's mappers, the dataset writer)."""

from __future__ import annotations

import sys

# fork where the OS has it: a worker starts at once with every module already imported (a
# spawned one imports them all again, 0.3-0.5 s before it does any work, on the same cores).
# Safe for these workers: they never touch the parent's SQLite handles (the ingest's open
# transaction, the dataset's reader), leave through os._exit without closing them, and print
# nothing, so a lock the progress bar's thread held at the fork is never waited for.
START_METHOD = "fork" if sys.platform == "linux" else "spawn"
