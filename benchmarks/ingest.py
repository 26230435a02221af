"""Ingest speed and memory against a plain row scan of the same data, in one run, per format.

    python benchmarks/ingest.py [--messages 1000000] [--keep DIR] [--formats android,pc3,pywxdump]

For each format, (a) a baseline that only reads every message row: the encrypted
EnMicroMsg.db opened with its key and `SELECT *` (android), `SELECT *` from every decrypted
MSGn.db (pc3), every PyWxDump CSV through the csv module (pywxdump); and (b) the full
`wechat-avatar ingest` of it (map, decompress, render, write chat.db) in a child process.
Each ingest must store every message the export holds (synth.json's count, which the
baseline's row count must match too), or the benchmark fails. Prints b/a, the ingest's peak
RSS, and its CPU time with its workers (steadier than wall time on a shared machine).
Targets: ratio <= 5, peak RSS <= 1 GB.
The Android export lives in DIR itself (as before), the others in DIR/pc3, DIR/pywxdump.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from wechat_avatar import android_crypto
from wechat_avatar.store import Store
from wechat_avatar.workspace import Workspace

UIN = "1727374951"
csv.field_size_limit(sys.maxsize)


def run_child(args: list[str]) -> tuple[float, int, float]:
    """Run a command; return (wall seconds, peak RSS bytes of it and its workers together,
    CPU seconds of it and its workers together: on a shared machine the steadier figure)."""
    cpu_before = _children_cpu()
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
    return elapsed, peak, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every finished descendant, workers included
    return usage.ru_utime + usage.ru_stime


def scan_android(export: Path) -> int:
    conn = android_crypto.open_encrypted(
        export / "EnMicroMsg.db", android_crypto.android_key(android_crypto.DEFAULT_IMEI, UIN)
    )
    rows = sum(1 for _ in conn.execute("SELECT * FROM message"))
    conn.close()
    return rows


def scan_pc3(export: Path) -> int:
    rows = 0
    for shard in sorted(export.rglob("MSG*.db")):
        conn = sqlite3.connect(shard)
        rows += sum(1 for _ in conn.execute("SELECT * FROM MSG"))
        conn.close()
    return rows


def scan_pywxdump(export: Path) -> int:
    rows = 0
    for path in sorted(export.rglob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows += sum(1 for _ in csv.reader(fh)) - 1
    return rows


# format -> (what proves the export is there, the baseline scan, what to hand to ingest)
FORMATS: dict[str, tuple[str, Callable[[Path], int], Callable[[Path], list[str]]]] = {
    "android": ("EnMicroMsg.db", scan_android, lambda e: [str(e / "EnMicroMsg.db"), "--uin", UIN]),
    "pc3": ("synth.json", scan_pc3, lambda e: [str(e / "WeChat Files" / "wxid_avatar_self")]),
    "pywxdump": ("synth.json", scan_pywxdump, lambda e: [str(e)]),
}


def check_stored(workspace: Path, export: Path, scanned: int) -> None:
    """Every synthetic message must be in chat.db: an ingest that skipped rows would read as faster."""
    made = json.loads((export / "synth.json").read_text(encoding="utf-8"))["messages"]
    with Store.open(Workspace(workspace), create=False) as store:
        stored = store.count("messages")
    if not stored == scanned == made:
        sys.exit(f"FAILED: the export holds {made:,} messages and the baseline scanned {scanned:,} rows, "
                 f"but the ingest stored {stored:,}: its time is not comparable")  # fmt: skip


def bench(fmt: str, export: Path, work: Path, messages: int, repeat: int) -> None:
    marker, scan, ingest_args = FORMATS[fmt]
    cli = [sys.executable, "-m", "wechat_avatar"]
    if not (export / marker).exists():
        extra = [] if fmt == "android" else ["--format", fmt]
        synth_s, *_ = run_child([*cli, "synth", str(export), "--messages", str(messages), "--seed", "1", *extra])
        print(f"{fmt:<9} synth      {messages:>9,} messages  {synth_s:7.2f} s")
    scans, ingests = [], []
    for i in range(repeat):  # this machine's disk is noisy: best of N for both sides
        start = time.perf_counter()
        rows = scan(export)
        scans.append((time.perf_counter() - start, rows))
        ws = work / f"ws-{fmt}-{i}"
        ingests.append(run_child([*cli, "ingest", *ingest_args(export), "--workspace", str(ws)]))
        check_stored(ws, export, rows)
        shutil.rmtree(ws)
    scan_s, rows = min(scans)
    (ingest_s, _, cpu_s), rss = min(ingests), max(r for _, r, _ in ingests)
    print(f"{fmt:<9} (a) scan   {rows:>9,} rows      {scan_s:7.2f} s  ({rows / scan_s:,.0f} rows/s)")
    print(f"{fmt:<9} (b) ingest {rows:>9,} rows      {ingest_s:7.2f} s  ({rows / ingest_s:,.0f} msgs/s, "
          f"{cpu_s:.2f} s CPU with its workers)")  # fmt: skip
    print(f"{fmt:<9} runs       scan {' '.join(f'{t:.2f}' for t, _ in scans)} s; "
          f"ingest {' '.join(f'{t:.2f}' for t, _, _ in ingests)} s")  # fmt: skip
    print(f"{fmt:<9} ratio b/a  {ingest_s / scan_s:.2f}   (target <= 5)")
    print(f"{fmt:<9} peak RSS   {rss / 2**20:.0f} MiB, ingest and its render workers together  (target <= 1024)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the exports here and reuse them next time")
    parser.add_argument("--repeat", type=int, default=1, help="run both N times, report the best of each")
    parser.add_argument("--formats", default="android,pc3,pywxdump", help="comma-separated: android, pc3, pywxdump")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    base = args.keep or root / "export"
    try:
        for fmt in args.formats.split(","):
            if fmt not in FORMATS:
                sys.exit(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
            bench(fmt, base if fmt == "android" else base / fmt, root, args.messages, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
