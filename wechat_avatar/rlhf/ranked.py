"""The ranked file, WORKSPACE/rlhf/ranked.jsonl: contexts with k scored candidate replies, the seed's format.

One JSON object a line (the seed's own files, a JSON array of the same objects, load too):

    {"source": "驾校周师傅:今天下午一点四十来练车，准时到哈\\n乌冬面:科三哈\\n驾校周师傅:肯定是的",
     "resp1": "为啥迟到？<s>[尴尬]", "resp2": "好<s>[手机图片]<s>我有点疑惑", "resp3": "好<s>收到",
     "scores": ["1", "2", "3"]}

`source` is the context as the seed had it: one message a line, `name:text`, oldest first; the
avatar's own messages are lines under its own name, one line per bubble (`dataset.prompt` turns it
into the prompt messages a model was trained on: `conversation`). `respN` are the k candidates,
bubbles joined by `<s>`. `scores` has one number per candidate (numeric strings, as the seed wrote
them, are read as numbers): HIGHER IS BETTER; equal scores rank nothing (`pairs`).

Our extras, all optional and ignored by the seed's tools: `labeled` (a person reviewed or wrote it:
nothing merges over it), `origin` (sample | judge | label | chat | web | import), `provocation` (the
context provokes: sampled always, reported apart), `judge` (which judge scored it).

A bad record (missing fields, scores that are not numbers, k scores for another number of
candidates, an empty candidate) is one line in `problems` and is kept verbatim when the file is
written back: nothing already labeled is ever lost.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from wechat_avatar.dataset.prompt import prompt
from wechat_avatar.dataset.window import Line
from wechat_avatar.errors import UsageError

SEED_FIELDS = ("source", "scores")  # plus resp1..respK
EXTRAS = ("labeled", "origin", "provocation", "judge")
_RESP = re.compile(r"resp([1-9][0-9]*)")


@dataclass(frozen=True)
class Ranked:
    """One context and its k candidates with one score each (higher is better)."""

    source: str  # "name:text" lines, oldest first, the avatar's own under its name
    responses: tuple[str, ...]  # resp1..respK
    scores: tuple[float, ...]  # len == len(responses)
    labeled: bool = False  # a person reviewed it: imports and judges never replace it
    origin: str = ""
    provocation: bool = False
    judge: str = ""

    @property
    def k(self) -> int:
        return len(self.responses)

    def rescored(self, scores: Iterable[float], **changes: Any) -> Ranked:
        return replace(self, scores=tuple(float(s) for s in scores), **changes)

    def to_json(self) -> dict[str, Any]:
        """The seed's fields (scores as the seed wrote them, strings), then our extras where set."""
        out: dict[str, Any] = {"source": self.source}
        out |= {f"resp{i}": text for i, text in enumerate(self.responses, 1)}
        out["scores"] = [_score_text(s) for s in self.scores]
        out |= {name: getattr(self, name) for name in EXTRAS if getattr(self, name)}
        return out


def _score_text(score: float) -> str:
    return str(int(score)) if float(score).is_integer() else repr(float(score))


def pairs(record: Ranked) -> list[tuple[str, str]]:
    """Every ordered (chosen, rejected) pair: chosen scored strictly higher. Ties give no pair.

    Scores [1, 2, 3] give (resp3, resp2), (resp3, resp1), (resp2, resp1); [3, 3, 1] give
    (resp1, resp3), (resp2, resp3). Chosen in order of its score, best first."""
    order = sorted(range(record.k), key=lambda i: -record.scores[i])
    return [(record.responses[i], record.responses[j]) for a, i in enumerate(order) for j in order[a + 1 :]
            if record.scores[i] > record.scores[j]]  # fmt: skip


# --- reading ------------------------------------------------------------------------------------------------------


class BadRecord(ValueError):
    """Why one record cannot be used, as one sentence."""


def record_of(data: Any) -> Ranked:
    """A record from one parsed JSON object, or BadRecord saying what is wrong with it."""
    if not isinstance(data, dict):
        raise BadRecord("not a JSON object")
    source = data.get("source")
    if not isinstance(source, str):
        raise BadRecord('no "source" (the context) string' if source is None else '"source" is not a string')
    numbers = sorted(int(m.group(1)) for key in data if (m := _RESP.fullmatch(key)))
    if not numbers:
        raise BadRecord("no candidates (resp1, resp2, …)")
    if numbers != list(range(1, len(numbers) + 1)):
        missing = min(set(range(1, numbers[-1] + 1)) - set(numbers))
        raise BadRecord(f"resp{missing} is missing (candidates must be resp1..resp{numbers[-1]})")
    responses = tuple(data[f"resp{i}"] for i in numbers)
    for i, text in enumerate(responses, 1):
        if not isinstance(text, str):
            raise BadRecord(f"resp{i} is not a string")
        if not text.strip():
            raise BadRecord(f"resp{i} is empty")
    raw = data.get("scores")
    if not isinstance(raw, list):
        raise BadRecord('no "scores" list' if raw is None else '"scores" is not a list')
    if len(raw) != len(responses):
        raise BadRecord(f"{len(responses)} candidates but {len(raw)} scores (k mismatch)")
    scores = tuple(_number(s, i) for i, s in enumerate(raw, 1))
    extras = {name: data[name] for name in EXTRAS if name in data}
    for name in ("labeled", "provocation"):
        extras[name] = extras.get(name) is True
    for name in ("origin", "judge"):
        extras[name] = str(extras.get(name) or "")
    return Ranked(source, responses, scores, **extras)


def _number(value: Any, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRecord(f"score {i} ({json.dumps(value, ensure_ascii=False)}) is not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadRecord(f"score {i} ({json.dumps(value, ensure_ascii=False)}) is not a number") from None
    if not math.isfinite(number):
        raise BadRecord(f"score {i} ({value}) is not a finite number")
    return number


@dataclass
class RankedFile:
    """A ranked file as read: its good records, a one-line problem per bad one, and the bad ones' raw
    text, which `write` keeps so that nothing a person put there is lost."""

    path: Path
    records: list[Ranked] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "ranked.jsonl:7: resp2 is empty"
    bad: list[str] = field(default_factory=list)  # the bad records' JSON lines, verbatim

    @classmethod
    def read(cls, path: Path) -> RankedFile:
        """The file's records; a file that does not exist has none. JSON lines, or a JSON array (the seed's)."""
        out = cls(Path(path))
        if not out.path.exists():
            return out
        try:
            text = out.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {path}: {err}", hint="pass a UTF-8 JSON lines file") from None
        for where, raw, data in _entries(text, out.path.name):
            try:
                if isinstance(data, BadRecord):
                    raise data
                out.records.append(record_of(data))
            except BadRecord as err:
                out.problems.append(f"{where}: {err}")
                out.bad.append(raw)
        return out

    def write(self) -> None:
        """Replace the file whole (a temporary file renamed over it): good records, then the bad ones."""
        lines = [json.dumps(r.to_json(), ensure_ascii=False) for r in self.records] + self.bad
        atomic_write(self.path, "".join(f"{line}\n" for line in lines))


def _entries(text: str, name: str) -> Iterable[tuple[str, str, Any]]:
    """(where, raw text, parsed object or BadRecord) of every record in JSON lines or a JSON array."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as err:
            yield f"{name}:{err.lineno}", text, BadRecord(f"not a JSON array ({err.msg})")
            return
        for i, item in enumerate(items, 1):
            yield f"{name}: record {i}", json.dumps(item, ensure_ascii=False), item
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{name}:{number}", line, json.loads(line)
        except ValueError:
            yield f"{name}:{number}", line, BadRecord("not JSON")


def load_ranked(path: Path) -> tuple[list[Ranked], list[str]]:
    """The good records of a ranked file and one clear line per bad record (which is skipped).

    A missing file is an error: there is nothing to train on."""
    if not Path(path).is_file():
        raise UsageError(f"no ranked file at {path}",
                         hint="run `wechat-avatar rlhf sample` then `rlhf judge` (or `rlhf import FILE`)")  # fmt: skip
    ranked = RankedFile.read(path)
    return ranked.records, ranked.problems


# --- writing ------------------------------------------------------------------------------------------------------


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, flush it to disk, and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lock(path: Path) -> FileLock:
    """The lock every writer of one ranked file holds from its read to its write (label page, serve, chat
    and the CLI may write at once; a cross-platform lock file rather than fcntl, for Windows users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(f".{path.name}.lock")), timeout=30)


def merge(existing: list[Ranked], incoming: Iterable[Ranked], *, over_labeled: bool = True) -> tuple[list[Ranked], int]:
    """`existing` updated with `incoming`, keyed by context: a new context is appended, a known one is
    replaced, except that an unlabeled record never replaces a labeled one (nor, with `over_labeled`
    False, does any record). Returns the records and how many incoming ones were refused so."""
    out = list(existing)
    where = {r.source: i for i, r in enumerate(out)}
    refused = 0
    for record in incoming:
        i = where.get(record.source)
        if i is None:
            where[record.source] = len(out)
            out.append(record)
        elif out[i].labeled and not (record.labeled and over_labeled):
            refused += 1
        else:
            out[i] = record
    return out, refused


def update(path: Path, incoming: Iterable[Ranked], *, over_labeled: bool = True) -> tuple[RankedFile, int]:
    """Merge `incoming` into the file at `path` under its lock; the file as written, and the refusals."""
    with lock(path):
        ranked = RankedFile.read(path)
        ranked.records, refused = merge(ranked.records, incoming, over_labeled=over_labeled)
        ranked.write()
    return ranked, refused


# --- contexts -----------------------------------------------------------------------------------------------------


def source_of(conversation: list[dict[str, str]], self_name: str) -> str:
    """A prompt's messages (dataset/prompt.py, test.jsonl) as the seed's source: user turns are already
    `name:text` lines; each of the avatar's bubbles becomes a line under its name. The system prompt is
    not part of it."""
    lines: list[str] = []
    for message in conversation:
        if message["role"] == "user":
            lines += message["content"].split("\n")
        elif message["role"] == "assistant":
            lines += [f"{self_name}:{b}" for b in message["content"].split("<s>") if b.strip()]
    return "\n".join(lines)


def lines_of(source: str, self_name: str) -> list[Line]:
    """The source's messages as dataset lines: `name:text` (the first colon ends the name; a line with
    none continues the one before); the avatar's are the lines under `self_name`."""
    out: list[Line] = []
    for i, raw in enumerate(source.split("\n")):
        name, colon, text = raw.partition(":")
        if not colon and out:
            last = out[-1]
            out[-1] = last._replace(text=f"{last.text} {raw}")
            continue
        name, text = (name, text) if colon else ("", raw)
        out.append(Line(i, name == self_name, name, text, "text", 0))
    return [line for line in out if line.text.strip()]


def conversation(source: str, self_name: str, system: str, window: int = 0) -> list[dict[str, str]]:
    """The prompt a model answers for this context, built as the dataset builds them (`dataset.prompt`):
    system prompt, then alternating user/assistant turns ending with the friend's. `window` > 0 keeps
    only the last `window` messages, as training did."""
    lines = lines_of(source, self_name)
    return prompt(lines, system, window or max(len(lines), 1))
