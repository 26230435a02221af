"""PPO's memory against SFT's on the same model: four roles on one base, measured.

    python benchmarks/ppo_memory.py [--preset tiny-cpu|smollm2-cpu] [--messages 3000] [--keep DIR]

One synthetic history (synth -> ingest -> dataset through the real CLI), an SFT adapter
(`train sft --max-steps 2`), a hand-ranked rlhf/ranked.jsonl (each held-out context with its real
reply, a rude and a gentle one) and a reward model (`train reward --max-steps 2`). Then, each in
its own child process, peak RSS (process tree, sampled every 50 ms) of:
  (a) `train sft --max-steps 1`   one SFT step (the preset's batch size and max_length)
  (b) `train ppo --max-steps 1`   one PPO step: rollouts, reward, reference, critic, update
  (c) python loading the base 0, 1 and 4 times (imports only, one copy, four copies)
and prints PPO / SFT (target ≤ 1.3), and what four separate copies of the base would cost:
PPO's peak plus three more bases, the extra base measured by (c).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import run_child  # the sibling benchmark's child-process timer (wall, peak RSS, ...)

from wechat_avatar.workspace import Workspace

CLI = [sys.executable, "-m", "wechat_avatar"]
LOAD = """
import sys
from wechat_avatar.config import load_config
from wechat_avatar.models.load import load_base, resolve
from wechat_avatar.workspace import Workspace
cfg = load_config(None, sys.argv[2])
models = [load_base(resolve(Workspace(sys.argv[1]), cfg.model), cfg.model) for _ in range(int(sys.argv[3]))]
"""


def cli(*args: str) -> None:
    _, _, _ = run_child([*CLI, *args])


def ranked(ws: Workspace, limit: int = 48) -> None:
    """Held-out contexts with the real reply (2), a rude (1) and a gentle one (3)."""
    from wechat_avatar.dataset.splits import read_split, self_name
    from wechat_avatar.train.pairs import source_from_messages

    name = self_name(ws)
    lines = []
    for conversation in read_split(ws, "test")[:limit]:
        record = {"source": source_from_messages(conversation[:-1], name), "resp1": conversation[-1]["content"],
                  "resp2": "滚<s>烦不烦", "resp3": "好的呀<s>别生气嘛", "scores": [2, 1, 3]}  # fmt: skip
        lines.append(json.dumps(record, ensure_ascii=False))
    ws.ranked.parent.mkdir(parents=True, exist_ok=True)
    ws.ranked.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny-cpu")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="ppo-memory-"))
    ws = Workspace(root / "workspace")
    p = ["--preset", args.preset, "--workspace", str(ws)]
    print(f"preparing {ws} ({args.preset}) ...", flush=True)
    cli("synth", str(root / "export"), "--messages", str(args.messages))
    cli("ingest", str(root / "export"), "--workspace", str(ws))
    cli("dataset", "--workspace", str(ws))
    cli("train", "sft", "--max-steps", "2", *p)
    ranked(ws)
    cli("train", "reward", "--max-steps", "2", *p)
    _, sft, _ = run_child([*CLI, "train", "sft", "--max-steps", "1", *p])
    _, ppo, _ = run_child([*CLI, "train", "ppo", "--max-steps", "1", *p])
    loads = {n: run_child([sys.executable, "-c", LOAD, str(ws), args.preset, str(n)])[1] for n in (0, 1, 4)}
    base = loads[1] - loads[0]
    mib = 2**20
    print(f"\n{args.preset}: peak RSS of one step (process tree)")
    print(f"  SFT step                       {sft / mib:8.0f} MiB")
    print(f"  PPO step (4 roles, 1 base)     {ppo / mib:8.0f} MiB   PPO / SFT = {ppo / sft:.2f}  (target ≤ 1.3)")
    print(f"  imports only / 1 base / 4 bases {loads[0] / mib:.0f} / {loads[1] / mib:.0f} / {loads[4] / mib:.0f} MiB"
          f"  (one base ≈ {base / mib:.0f} MiB)")  # fmt: skip
    four = ppo + 3 * base
    print(f"  four separate copies (PPO + 3 bases) ≈ {four / mib:.0f} MiB = {four / sft:.2f} × SFT")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
