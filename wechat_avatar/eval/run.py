"""Evaluate runs on the held-out split: WORKSPACE/eval/<name>/{metrics.json, report.html}.

A run is the base model, the base model with an adapter, or an earlier eval folder whose
metrics.json is read back rather than recomputed. Every run scores the same seeded subset of
dataset/messages/test.jsonl: a sample's context is every message before its final assistant
turn, and that turn is the real reply. A model run computes the perplexity of the real replies,
generates its own, and answers the privacy probes; metrics.py and privacy.py score the text.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from wechat_avatar import __version__
from wechat_avatar.config import AvatarConfig, EvalConfig
from wechat_avatar.dataset.prompt import MEMORY_HEADER
from wechat_avatar.dataset.splits import dataset_hash
from wechat_avatar.errors import DatasetError, UsageError
from wechat_avatar.eval import knowledge, metrics, privacy, provocation, whosaid
from wechat_avatar.eval.perplexity import reply_perplexity
from wechat_avatar.memory.profile import PERSONA_HEADER
from wechat_avatar.models.load import check_adapter
from wechat_avatar.workspace import ADAPTER_FILE, Workspace

Progress = Callable[[str, int | None], Callable[[int], None]]
METRICS_FILE, REPORT_FILE = "metrics.json", "report.html"  # in each WORKSPACE/eval/<name>/
RUN_NAME = "run"  # the eval that `wechat-avatar run` writes
GENERATION_OPTIONS = {
    "samples",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "batch_size",
    "provocation_repeats",
}  # in metrics.json
SELECT_SEED = 0  # the subset never depends on a generation setting, so separate evals stay comparable
EXAMPLES = 20  # sample conversations shown side by side in the report
_NAME = re.compile(r"[\w.-]+")


class Sample(NamedTuple):
    index: int  # 0-based line of test.jsonl: how runs from different evals line up
    context: list[dict[str, str]]  # system, user, assistant, …, ending with a user turn
    reply: str  # the real final assistant turn


class RunSpec(NamedTuple):
    label: str
    kind: str  # "base" | "adapter" | "saved"
    path: Path | None  # the adapter or the earlier eval folder


@dataclass
class EvalResult:
    path: Path  # WORKSPACE/eval/<name>
    metrics: dict[str, Any]


def evaluate(
    workspace: Workspace,
    cfg: AvatarConfig,
    adapter: str | None,
    compare: Sequence[str] = (),
    *,
    name: str | None = None,
    progress: Progress | None = None,
    probes: Path | None = None,
) -> EvalResult:
    """Score `adapter` (default: WORKSPACE/adapters/sft, else the base model) and every `compare` run,
    with the generation settings and sample count of `cfg.eval`; with `probes` (a synth.json), the
    knowledge probes too, without memory and (where `memory build` ran) with it."""
    options = cfg.eval
    test_path = workspace.split("test")
    everything = load_test(workspace)
    chosen = select(everything, options.samples)
    # every held-out provocation, not only those in the subset: the slice is small
    cues = provocation.matcher(options.provocation_cues)
    provoked = [s for s in everything if provocation.is_provocation(s.context, cues)]
    memory = None
    if cfg.memory.enabled:  # each sample sees what was recalled before its own session, as serving would
        chosen, memory = remember(workspace, cfg, chosen)
        provoked, _ = remember(workspace, cfg, provoked)
    specs = _unique([resolve(workspace, adapter), *(resolve(workspace, spec) for spec in compare)])
    for spec in specs:  # a bad adapter fails now, not after the runs before it
        if spec.kind == "adapter" and spec.path is not None:
            check_adapter(workspace, cfg, spec.path)
    name = name or "-vs-".join(spec.label for spec in specs)
    if not _NAME.fullmatch(name):
        raise UsageError(f"--name {name!r} is not a folder name", hint="use letters, digits, '.', '-' and '_'")
    out = workspace.eval_run(name)
    dataset = {
        "path": str(workspace.dataset),
        "manifest": dataset_hash(workspace),  # as recorded beside adapters (train/data.py)
        "test_sha256": _sha256(test_path),
        "train_sha256": _sha256(workspace.split("train")),
        "test_samples": len(everything),
        "samples": len(chosen),
        "indices": [s.index for s in chosen],
        "provocation_indices": [s.index for s in provoked],
    }
    secrets = privacy.load_secrets(workspace)
    marks = metrics.marks(cfg.render.placeholders)
    real = [s.reply for s in chosen]
    real_style = metrics.style(real, marks)
    scorer = Scorer(chosen, secrets, marks, real_style, options, provoked, [s.reply for s in everything])
    scorer.judge = whosaid.Discriminator.of(whosaid.split_texts(workspace.split("train")))
    if probes is not None:
        scorer.ask_knowledge(workspace, cfg, knowledge.load_probes(probes))
    runs: list[dict[str, Any]] = []
    for spec in specs:
        if spec.kind == "saved":
            runs += _saved_runs(spec, dataset)
        else:
            runs.append(scorer.model_run(workspace, cfg, spec, progress))
    result = {
        "name": name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wechat_avatar": __version__,
        "dataset": dataset,
        "options": options.model_dump(include=GENERATION_OPTIONS),
        "real": {
            "style": real_style,
            "civility": metrics.civility(real),
            "provocation": real_provocation(workspace, provoked, cues),
            "distinct": {f"distinct{n}": metrics.distinct(real, n) for n in (1, 2)},
        },  # beside the runs'
        "whosaid": whosaid.summary(workspace, scorer.judge, real),
        "runs": _unique_labels(runs),
        "memory": memory,  # None with memory off; else how many samples got memories
    }
    _write_json(out / METRICS_FILE, result)
    from wechat_avatar.eval.report import write_report

    examples = [_example(s, secrets) for s in chosen[:EXAMPLES]]
    write_report(result, examples, out / REPORT_FILE)
    return EvalResult(out, result)


# --- inputs -----------------------------------------------------------------------------------------------------


def load_test(workspace: Workspace) -> list[Sample]:
    """Every sample of dataset/messages/test.jsonl; a clear error where there is none to score."""
    path = workspace.split("test")
    hint = f"run `wechat-avatar dataset --workspace {workspace}` first"
    if not workspace.dataset.is_dir():
        raise DatasetError(f"no dataset in {workspace}", hint=hint)
    if not path.is_file():
        raise DatasetError(f"the dataset in {workspace.dataset} has no messages format", hint=hint)
    samples = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            samples.append(_sample(i, line, path))
    if not samples:
        raise DatasetError(
            f"the dataset's test split is empty ({path})",
            hint=f"rebuild it with held-out sessions: `wechat-avatar dataset --workspace {workspace} --test-ratio 0.1`",
        )
    return samples


def _sample(index: int, line: str, path: Path) -> Sample:
    try:
        messages = json.loads(line)["messages"]
        if len(messages) < 2 or messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
            raise ValueError("it does not end with a user turn and the assistant's reply")
        context = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages[:-1]]
        return Sample(index, context, str(messages[-1]["content"]))
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise DatasetError(f"{path}:{index + 1} is not a chat sample ({err})", hint="rebuild the dataset") from None


def remember(workspace: Workspace, cfg: AvatarConfig, samples: list[Sample]) -> tuple[list[Sample], dict[str, int]]:
    """The samples with the memory block in their system prompt: memories from before each sample's session."""
    from wechat_avatar.memory.profile import persona_block
    from wechat_avatar.memory.recall import Recall
    from wechat_avatar.memory.samples import SampleRecall, split_sessions

    keys = split_sessions(workspace, "test")
    if len(keys) != sum(1 for line in workspace.split("test").read_text(encoding="utf-8").splitlines() if line):
        raise DatasetError(f"{workspace.dataset}/meta.jsonl does not match the test split", hint="rebuild the dataset")
    recall = SampleRecall(Recall.open(workspace, cfg), persona=persona_block(workspace, cfg))
    try:
        out = [s._replace(context=recall.context(keys[s.index], s.context)) for s in samples]
    finally:
        recall.recall.close()
    return out, recall.counts()


def select(samples: Sequence[Sample], n: int) -> list[Sample]:
    """A seeded subset of at most n samples, in file order: the same subset for every run and every eval."""
    if n >= len(samples):
        return list(samples)
    picked = random.Random(SELECT_SEED).sample(range(len(samples)), n)
    return [samples[i] for i in sorted(picked)]


def resolve(workspace: Workspace, spec: str | None) -> RunSpec:
    """`base`, an adapter folder, an earlier eval folder, or a name under WORKSPACE/adapters or WORKSPACE/eval."""
    if spec is None:
        default = workspace.trained_adapter()
        return RunSpec(default.name, "adapter", default) if default else RunSpec("base", "base", None)
    if spec == "base":
        return RunSpec("base", "base", None)
    for path in (Path(spec), workspace.adapter(spec), workspace.eval_run(spec)):
        if (path / METRICS_FILE).is_file():
            return RunSpec(path.name, "saved", path)
        if (path / ADAPTER_FILE).is_file():
            return RunSpec(path.name, "adapter", path)
        if path.is_dir():
            raise UsageError(
                f"{path} is neither an adapter (no adapter_config.json) nor an eval run (no metrics.json)",
                hint="pass a folder written by `wechat-avatar train sft` or `wechat-avatar eval`, or `base`",
            )
    raise UsageError(
        f"no adapter or eval run {spec!r}: not a folder, nor in {workspace.adapters} or {workspace.evals}",
        hint="train one with `wechat-avatar train sft`, or pass `base` for the model without adapter",
    )


def _unique(specs: list[RunSpec]) -> list[RunSpec]:
    return list(dict.fromkeys(specs))  # `--compare base` twice is one run


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# --- runs -------------------------------------------------------------------------------------------------------


class Scorer:
    """Scores one model after another on the same samples and probes."""

    def __init__(
        self,
        samples: list[Sample],
        secrets: list[privacy.Secret],
        marks: metrics.Marks,
        real_style: dict[str, Any],
        options: EvalConfig,
        provoked: Sequence[Sample] = (),
        reference: list[str] | None = None,
    ) -> None:
        self.samples, self.secrets, self.marks, self.real_style, self.options = (
            samples, secrets, marks, real_style, options
        )  # fmt: skip
        self.provoked = list(provoked)
        # the person's held-out replies that generated replies are counted against (over-production)
        self.reference = reference if reference is not None else [s.reply for s in samples]
        self.probes = privacy.probes(secrets)
        system = next((m["content"] for m in samples[0].context if m["role"] == "system"), "") if samples else ""
        for header in (PERSONA_HEADER, MEMORY_HEADER):  # the probes bring their own persona and memories, or none
            system = system.partition(f"\n\n{header}")[0]
        self.probe_conversations = [
            privacy.probe_conversation(system, p) for p in self.probes for _ in range(privacy.PROBE_REPEATS)
        ]
        self.system = system
        self.knowledge: list[knowledge.Probe] = []
        self.knowledge_conversations: list[list[dict[str, str]]] = []  # without memory, then with it
        self.knowledge_memory = False
        self.judge: whosaid.Discriminator | None = None  # who-said-it, trained on the train split

    def ask_knowledge(self, workspace: Workspace, cfg: AvatarConfig, probes: list[knowledge.Probe]) -> None:
        """Each probe without memory and, where the memory index exists, with what it recalls before the probe."""
        from wechat_avatar.memory.profile import persona_block, with_persona
        from wechat_avatar.memory.recall import Recall

        self.knowledge = probes
        self.knowledge_conversations = [knowledge.conversation(p, self.system) for p in probes]
        if workspace.memory_index.is_file():
            recall = Recall.open(workspace, cfg)
            system = with_persona(self.system, persona_block(workspace, cfg))  # with memory on and a profile
            try:
                self.knowledge_conversations += [
                    knowledge.conversation(p, system, recall(p.friend, p.question, p.ts_ms)) for p in probes
                ]
            finally:
                recall.close()
            self.knowledge_memory = True

    def model_run(
        self, workspace: Workspace, cfg: AvatarConfig, spec: RunSpec, progress: Progress | None
    ) -> dict[str, Any]:
        from wechat_avatar.models.load import load_for_inference

        loaded = load_for_inference(workspace, cfg, spec.path)
        adapter = str(loaded.adapter) if loaded.adapter else None
        about = {"label": spec.label, "kind": spec.kind, "base": loaded.base, "adapter": adapter}
        try:
            full = [[*s.context, {"role": "assistant", "content": s.reply}] for s in self.samples]
            ppl = reply_perplexity(loaded.model, loaded.tokenizer, full, max_length=cfg.sft.max_length,
                                   advance=_hook(progress, f"{spec.label}: perplexity", len(full)))  # fmt: skip
            provoked = [s.context for s in self.provoked for _ in range(self.options.provocation_repeats)]
            conversations = [s.context for s in self.samples] + self.probe_conversations + provoked
            conversations += self.knowledge_conversations
            replies = self._generate(loaded.model, loaded.tokenizer, conversations,
                                     _hook(progress, f"{spec.label}: generate", len(conversations)))  # fmt: skip
        finally:
            del loaded  # two models at once would double peak memory
            gc.collect()
        n, m = len(self.samples), len(self.samples) + len(self.probe_conversations)
        k = m + len(self.provoked) * self.options.provocation_repeats
        scored = self.score(about, ppl, replies[:n], replies[n:m], replies[m:k])
        if self.knowledge:
            scored["knowledge"] = self.score_knowledge(replies[k:])
        return scored

    def score_knowledge(self, replies: list[str]) -> dict[str, Any]:
        k = len(self.knowledge)
        with_memory = knowledge.score(self.knowledge, replies[k:]) if self.knowledge_memory else None
        return {"without_memory": knowledge.score(self.knowledge, replies[:k]), "with_memory": with_memory}

    def _generate(
        self, model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], advance: Callable[[int], None]
    ) -> list[str]:
        from wechat_avatar.generate import generate_replies

        o = self.options
        step = 4 * o.batch_size  # a few batches per call, so the progress bar moves
        out: list[str] = []
        for start in range(0, len(conversations), step):
            chunk = conversations[start : start + step]
            out += generate_replies(model, tokenizer, chunk, max_new_tokens=o.max_new_tokens, temperature=o.temperature,
                                    top_p=o.top_p, seed=o.seed + start, batch_size=o.batch_size)  # fmt: skip
            advance(len(chunk))
        return out

    def score(
        self, about: dict[str, Any], ppl: dict[str, Any], generated: list[str], probe_replies: list[str],
        provoked_replies: Sequence[str] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """One run's metrics.json entry; every text in it has its secrets masked."""
        real = [s.reply for s in self.samples]
        style = metrics.style(generated, self.marks)
        n = privacy.PROBE_REPEATS
        names = [f"test sample {s.index + 1}" for s in self.samples]  # as the report labels them

        def redact(text: str) -> str:
            return privacy.redact(text, self.secrets)

        return {
            **about,
            "source": None,
            "comparable": True,
            "metrics": {
                "perplexity": ppl["perplexity"],
                "reply_tokens": ppl["tokens"],
                **metrics.text_metrics(generated, real),
            },
            "style": style,
            "style_gap": metrics.style_gap(style, self.real_style),
            "civility": metrics.civility(generated),
            "overproduction": _redact_overproduction(metrics.overproduction(generated, self.reference), redact),
            "provocation": self._provocation(provoked_replies, redact),
            "whosaid": self.judge.share(generated) if self.judge else None,  # % read as the person's
            "privacy": privacy.probe_report(generated, probe_replies, self.probes, self.secrets, names),
            "generations": {str(s.index): redact(g) for s, g in zip(self.samples, generated, strict=True)},
            "probes": [
                {"prompt": redact(p.prompt), "replies": [redact(r) for r in probe_replies[i * n : (i + 1) * n]]}
                for i, p in enumerate(self.probes)
            ],
        }

    def _provocation(self, replies: Sequence[str], redact: Callable[[str], str]) -> dict[str, Any]:
        """The rude share of the replies sampled for the provocation slice (provocation_repeats per sample)."""
        k = self.options.provocation_repeats
        return {
            **metrics.civility(replies),
            "samples": len(self.provoked),
            "generations": {str(s.index): [redact(r) for r in replies[i * k : (i + 1) * k]]
                            for i, s in enumerate(self.provoked)},
        }  # fmt: skip


def real_provocation(workspace: Workspace, provoked: Sequence[Sample], cues: Any) -> dict[str, Any]:
    """The person's own rude share on the slice, and on the training split's provocations (a larger sample
    of the same habit, read from dataset/messages/train.jsonl where it exists)."""
    train: list[str] = []
    path = workspace.split("train")
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"] if line.strip() else []
            if len(messages) >= 2 and provocation.is_provocation(messages[:-1], cues):
                train.append(str(messages[-1]["content"]))
    return {**metrics.civility([s.reply for s in provoked]), "samples": len(provoked),
            "train": metrics.civility(train)}  # fmt: skip


def _redact_overproduction(found: dict[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    def clean(entry: dict[str, Any] | None) -> dict[str, Any] | None:
        return {**entry, "reply": redact(entry["reply"])} if entry else None

    return {**found, "worst": clean(found["worst"]), "top": [clean(e) for e in found["top"]]}


def _hook(progress: Progress | None, description: str, total: int) -> Callable[[int], None]:
    return progress(description, total) if progress else lambda n: None


def _saved_runs(spec: RunSpec, dataset: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of an earlier eval, marked comparable only if they scored the very same samples.

    A run on another subset of the same test split still shows its replies where the subsets overlap."""
    assert spec.path is not None
    path = spec.path / METRICS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        runs, theirs = list(saved["runs"]), saved["dataset"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UsageError(f"{path} is not an eval's metrics.json ({err})", hint="rerun that eval") from None
    same_data = theirs.get("test_sha256") == dataset["test_sha256"]
    same = same_data and theirs.get("indices") == dataset["indices"]
    out = [{**run, "source": str(spec.path), "comparable": same} for run in runs]
    if not same_data:  # its sample numbers point at other conversations now: no side by side
        out = [{**run, "generations": {}} for run in out]
    return out


def _unique_labels(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs with distinct labels: a repeated label gets its eval folder's name, then a number."""
    seen: set[str] = set()
    out = []
    for run in runs:
        label = run["label"]
        if label in seen and run.get("source"):
            label = f"{Path(run['source']).name}/{label}"
        base, k = label, 2
        while label in seen:
            label, k = f"{base}-{k}", k + 1
        seen.add(label)
        out.append({**run, "label": label})
    return out


def _example(sample: Sample, secrets: list[privacy.Secret]) -> dict[str, Any]:
    """A sample for the report's side-by-side section, its secrets masked."""
    context = [{**m, "content": privacy.redact(m["content"], secrets)} for m in sample.context]
    return {"index": sample.index, "context": context, "reply": privacy.redact(sample.reply, secrets)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)
