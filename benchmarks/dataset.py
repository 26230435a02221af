"""Dataset build speed and memory against the ingest of the same data, in one run.

    python benchmarks/dataset.py [--messages 1000000] [--keep DIR] [--repeat N]

Synthesises (or reuses) an export, ingests it, then builds the dataset with the default
config (all three formats, report included), both through the real CLI. Prints messages/s,
peak RSS and dataset/ingest. Targets: ratio <= 1, peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import run_child  # the sibling benchmark's child-process timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the export here and reuse it next time")
    parser.add_argument("--repeat", type=int, default=1, help="run both N times, report the best of each")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "wechat_avatar"]
    root = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    export = args.keep or root / "export"
    try:
        if not (export / "EnMicroMsg.db").exists():
            run_child([*cli, "synth", str(export), "--messages", str(args.messages), "--seed", "1"])
        ingests, builds = [], []
        for _ in range(args.repeat):  # this machine's disk is noisy: best of N for both sides
            shutil.rmtree(root / "ws", ignore_errors=True)
            # the database alone: a kept export folder may also hold the other formats' copies
            ingests.append(run_child([*cli, "ingest", str(export / "EnMicroMsg.db"), str(export / "shared_prefs"),
                                      "--workspace", str(root / "ws")]))  # fmt: skip
            builds.append(run_child([*cli, "dataset", "--workspace", str(root / "ws")]))
        ingest_s = min(t for t, _, _ in ingests)
        build_s, rss = min(t for t, _, _ in builds), max(r for _, r, _ in builds)
        n = args.messages
        print(f"ingest   {n:>9,} messages  {ingest_s:7.2f} s  ({n / ingest_s:,.0f} msgs/s)")
        print(f"dataset  {n:>9,} messages  {build_s:7.2f} s  ({n / build_s:,.0f} msgs/s)")
        print(f"ratio dataset/ingest  {build_s / ingest_s:.2f}   (target <= 1)")
        print(f"peak RSS  {rss / 2**20:.0f} MiB  (target <= 1536)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
