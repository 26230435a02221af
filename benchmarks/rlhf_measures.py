"""The two rudeness measures and the provocation cues side by side, on the synthetic persona.

    python benchmarks/rlhf_measures.py [--workspace DIR]

Prints how eval's `is_rude` (the dataset's profanity list) and the offline judge's `hostile`
(rlhf/civility.py) agree on the persona's rude and mild answers to provocations (synth/phrases.py),
how many of its provocations `provokes` recognises, and, with --workspace, both measures over the
real replies of its train split. The cue list was written knowing the persona's phrases: these
figures check the measures are wired, not how well they carry to real chats.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wechat_avatar.eval.metrics import is_rude
from wechat_avatar.rlhf.civility import hostile
from wechat_avatar.rlhf.provoke import provokes
from wechat_avatar.synth import phrases
from wechat_avatar.workspace import Workspace


def both(name: str, replies: list[str]) -> None:
    rude, host = sum(map(is_rude, replies)), sum(map(hostile, replies))
    agree = sum(is_rude(r) == hostile(r) for r in replies)
    share = agree / len(replies)
    print(f"{name:<28} {len(replies):>6} replies  is_rude {rude:>5}  hostile {host:>5}  agree {share:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="also measure this workspace's train split")
    args = parser.parse_args()
    both("persona's rude answers", list(phrases.RUDE))
    both("persona's mild answers", list(phrases.MILD))
    both("persona's follow-ups", list(phrases.AFTER_RUDE))
    said = [*phrases.PROVOCATIONS, *phrases.PARTNER_FIGHTS]
    print(f"provocations recognised       {sum(map(provokes, said))} / {len(said)}")
    if args.workspace:
        path = Workspace(args.workspace).split("train")
        lines = path.read_text(encoding="utf-8").splitlines()
        replies = [json.loads(line)["messages"][-1]["content"] for line in lines]
        both("train split's real replies", replies)


if __name__ == "__main__":
    main()
