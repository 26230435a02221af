"""The workspace folder: the one place that names every artifact of the one-way flow.

    WORKSPACE/
      chat.db                       canonical store (ingest)
      dataset/                      samples, meta, manifest.json, report.html (dataset)
        <format>/{train,test}.jsonl
      private/pii_map.json          pseudonym -> original value; never part of a dataset
      models/tiny-qwen2/            the tiny preset's own base (train pretrain)
      adapters/<name>/              LoRA adapters: sft, reward, ppo, dpo (train …)
      eval/<run>/                   metrics.json + report.html (eval)
      rlhf/ranked.jsonl             scored candidates (rlhf sample | judge | label)
      rlhf/probes.txt               provocations always sampled (rlhf sample; yours to extend)
      memory/                       index of your own past exchanges (memory build)
      serve/                        the server's state: per-friend history (serve)
      channels/                     log.jsonl, STOP (kill switch), <channel>.json cursors and credentials (connect)
      .stamps/<stage>.json          what settings each stage last ran with (run)

Every stage takes a `Workspace` and asks it for paths; no other module spells one out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILE = "adapter_config.json"  # what makes a folder a LoRA adapter (peft writes it)
DEFAULT_ADAPTER = "sft"
MANIFEST_FILE, REPORT_FILE = "manifest.json", "report.html"  # in dataset/ (built in dataset_tmp first)


def split_name(split: str, fmt: str = "messages") -> str:
    """Where one split of one format lies inside a dataset folder."""
    return f"{fmt}/{split}.jsonl"


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser())

    def __str__(self) -> str:
        return str(self.root)

    # --- ingest ---------------------------------------------------------------------------------------------

    @property
    def store(self) -> Path:
        return self.root / "chat.db"

    # --- dataset --------------------------------------------------------------------------------------------

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def dataset_tmp(self) -> Path:
        """Where a dataset is built before it replaces `dataset/` whole."""
        return self.root / ".dataset.tmp"

    @property
    def manifest(self) -> Path:
        return self.dataset / MANIFEST_FILE

    @property
    def dataset_meta(self) -> Path:
        """One line per sample, train and test in the order written: split, chat, session, message ids, tags."""
        return self.dataset / "meta.jsonl"

    @property
    def dataset_report(self) -> Path:
        return self.dataset / REPORT_FILE

    def split(self, split: str, fmt: str = "messages") -> Path:
        """One split of one format: dataset/<format>/<split>.jsonl."""
        return self.dataset / split_name(split, fmt)

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def pii_map(self) -> Path:
        return self.private / "pii_map.json"

    # --- models and adapters --------------------------------------------------------------------------------

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def tiny_model(self) -> Path:
        return self.models / "tiny-qwen2"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    def adapter(self, name: str = DEFAULT_ADAPTER) -> Path:
        return self.adapters / name

    def trained_adapter(self, name: str = DEFAULT_ADAPTER) -> Path | None:
        """The adapter of that name if training finished writing it (else None): how chat, eval
        and serve find "the" adapter."""
        path = self.adapter(name)
        return path if (path / ADAPTER_FILE).is_file() else None

    # --- eval -----------------------------------------------------------------------------------------------

    @property
    def evals(self) -> Path:
        return self.root / "eval"

    def eval_run(self, name: str) -> Path:
        return self.evals / name

    # --- coming stages --------------------------------------------------------------------------------------

    @property
    def rlhf(self) -> Path:
        return self.root / "rlhf"

    @property
    def ranked(self) -> Path:
        """The seed's {"source","resp1","resp2","resp3","scores"} lines."""
        return self.rlhf / "ranked.jsonl"

    @property
    def probes(self) -> Path:
        """Provocations every `rlhf sample` includes; written with defaults on first use, the user extends it."""
        return self.rlhf / "probes.txt"

    @property
    def memory(self) -> Path:
        return self.root / "memory"

    @property
    def others(self) -> Path:
        """Other people's datasets, each a workspace of its own (dataset --as CONTACT: the who-said-it control)."""
        return self.root / "as"

    @property
    def memory_profile(self) -> Path:
        """Rule-mined persona facts, yours to edit; the system prompt's persona block (memory profile)."""
        return self.memory / "profile.yaml"

    @property
    def memory_index(self) -> Path:
        """Your past exchanges and their full-text index (memory build)."""
        return self.memory / "index.db"

    @property
    def memory_pii_map(self) -> Path:
        """Pseudonyms memory gave to values the dataset never saw; private like pii_map."""
        return self.private / "memory_pii_map.json"

    @property
    def serve(self) -> Path:
        return self.root / "serve"

    @property
    def serve_state(self) -> Path:
        """SQLite file of per-friend conversation history, kept across restarts."""
        return self.serve / "state.db"

    @property
    def channels(self) -> Path:
        return self.root / "channels"

    @property
    def channel_log(self) -> Path:
        """Every message a channel received, sent, drafted or held back, one JSON line each."""
        return self.channels / "log.jsonl"

    @property
    def channel_stop(self) -> Path:
        """The kill switch: while this file exists no channel replies (`connect --stop` writes it)."""
        return self.channels / "STOP"

    def channel_state(self, channel: str) -> Path:
        """A channel's cursor and credentials (mode 600)."""
        return self.channels / f"{channel}.json"

    # --- run ------------------------------------------------------------------------------------------------

    @property
    def stamps(self) -> Path:
        return self.root / ".stamps"

    def stamp(self, stage: str) -> Path:
        return self.stamps / f"{stage}.json"
