"""Who said it: a Turing-style test without a judge — does a reply read as the person's?

A discriminator learns, on the train split only, to tell the person's replies (each sample's final
assistant turn) from their friends' lines (each sample's last user turn, one unit per speaker):
character 1–3-grams, TF-IDF, logistic regression (scikit-learn: character n-grams need no word
segmentation, and a linear model on them is the standard authorship baseline). Eval reports the
share of each run's generated replies it attributes to the person, next to the share for the
person's own held-out replies (the ceiling) and for their friends' held-out lines (the floor), and,
as the swap-the-person control, for the held-out replies of every other person whose dataset
`dataset --as CONTACT` built: a measure that separates people gives those a low share.

Bubbles (<s>) become spaces: the model should judge wording, not how a turn was cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from wechat_avatar.workspace import Workspace

MIN_EACH = 5  # fewer texts of either side than this: no discriminator, and the report says why
NGRAMS = (1, 3)


@dataclass(frozen=True)
class Texts:
    person: list[str]  # the person's replies
    friends: list[str]  # what friends said to them


def split_texts(path: Path) -> Texts:
    """The replies and friends' lines of one messages-format split (empty where the file is missing)."""
    person: list[str] = []
    friends: list[str] = []
    if not path.is_file():
        return Texts(person, friends)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError):
            continue  # a bad line: the dataset's own checks report it; here it only is not learned from
        if len(messages) >= 2 and messages[-1]["role"] == "assistant" and messages[-2]["role"] == "user":
            person.append(messages[-1]["content"])
            friends += _speakers(messages[-2]["content"])
    return Texts(person, friends)


def _speakers(turn: str) -> list[str]:
    """A user turn's `name:text` lines, one text per run of the same speaker."""
    said = [line.partition(":") for line in turn.split("\n")]
    return ["<s>".join(text for _, _, text in run) for _, run in groupby(said, key=lambda s: s[0])]


def _plain(texts: Sequence[str]) -> list[str]:
    return [t.replace("<s>", " ") for t in texts]


class Discriminator:
    def __init__(self, texts: Texts, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.trained_on = {"person": len(texts.person), "friends": len(texts.friends)}
        self.model = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=NGRAMS, min_df=2, sublinear_tf=True),
            LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed),
        )
        x = _plain([*texts.person, *texts.friends])
        self.model.fit(x, [1] * len(texts.person) + [0] * len(texts.friends))

    @classmethod
    def of(cls, texts: Texts) -> Discriminator | None:
        """One trained on `texts`, or None where either side has too little to learn from."""
        if min(len(texts.person), len(texts.friends)) < MIN_EACH:
            return None
        return cls(texts)

    def share(self, texts: Sequence[str]) -> float | None:
        """Percent of `texts` attributed to the person (None for no texts)."""
        if not texts:
            return None
        return 100 * float(self.model.predict(_plain(texts)).mean())


def summary(workspace: Workspace, judge: Discriminator | None, real: Sequence[str]) -> dict[str, Any]:
    """metrics.json's "whosaid": what the discriminator learned from and the reference shares."""
    if judge is None:
        train = split_texts(workspace.split("train"))
        return {"trained_on": {"person": len(train.person), "friends": len(train.friends)},
                "skipped": f"fewer than {MIN_EACH} replies or friends' lines in the train split"}  # fmt: skip
    others = {}
    if workspace.others.is_dir():
        for other in sorted(p for p in workspace.others.iterdir() if p.is_dir()):
            # held out only: their training replies were the friends' lines this discriminator learned from
            replies = split_texts(Workspace(other).split("test")).person
            others[other.name] = {"replies": len(replies), "share": judge.share(replies)}
    return {
        "trained_on": judge.trained_on,
        "real": judge.share(real),  # the person's own held-out replies: the ceiling
        "friends": judge.share(split_texts(workspace.split("test")).friends),  # the floor
        "others": others,  # dataset --as CONTACT: other people's replies, the swap control
    }
