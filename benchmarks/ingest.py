"""Ingest speed and memory against a plain row scan of the same data, in one run.

    python benchmarks/ingest.py [--messages 1000000] [--keep DIR]

(a) baseline: open the encrypted EnMicroMsg.db with its key and `SELECT *` every message row;
(b) the full `wechat-avatar ingest` (decrypt, map, render, write chat.db) in a child process.
Prints b/a and the ingest's peak RSS. Targets: ratio <= 5, peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from wechat_avatar import android_crypto


def run_child(args: list[str]) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS bytes of it and its workers together)."""
    start = time.perf_counter()
    proc = psutil.Popen(args, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:  # a worker exited between listing and reading
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed")
    return elapsed, peak


def scan(db: Path, key: str) -> tuple[float, int]:
    start = time.perf_counter()
    conn = android_crypto.open_encrypted(db, key)
    rows = 0
    for _ in conn.execute("SELECT * FROM message"):
        rows += 1
    conn.close()
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the export here and reuse it next time")
    parser.add_argument("--repeat", type=int, default=1, help="run both N times, report the best of each")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "wechat_avatar"]
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    export = args.keep or root / "export"
    try:
        if not (export / "EnMicroMsg.db").exists():
            synth_s, _ = run_child([*cli, "synth", str(export), "--messages", str(args.messages), "--seed", "1"])
            print(f"synth      {args.messages:>9,} messages  {synth_s:7.2f} s")
        key = android_crypto.android_key(android_crypto.DEFAULT_IMEI, "1727374951")
        scans, ingests = [], []
        for i in range(args.repeat):  # this machine's disk is noisy: best of N for both sides
            scans.append(scan(export / "EnMicroMsg.db", key))
            ws = root / f"ws{i}"
            ingests.append(run_child([*cli, "ingest", str(export / "EnMicroMsg.db"), "--uin", "1727374951",
                                      "--workspace", str(ws)]))  # fmt: skip
            shutil.rmtree(ws)
        scan_s, rows = min(scans)
        ingest_s, rss = min(t for t, _ in ingests), max(r for _, r in ingests)
        print(f"(a) scan   {rows:>9,} rows      {scan_s:7.2f} s  ({rows / scan_s:,.0f} rows/s)")
        print(f"(b) ingest {rows:>9,} rows      {ingest_s:7.2f} s  ({rows / ingest_s:,.0f} msgs/s)")
        print(f"ratio b/a  {ingest_s / scan_s:.2f}   (target <= 5)")
        print(f"peak RSS   {rss / 2**20:.0f} MiB, ingest and its render worker together  (target <= 1024)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
