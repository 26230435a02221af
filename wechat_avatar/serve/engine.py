"""The reply engine: every reply, from `serve` or terminal `chat`, is generated here.

Requests queue up; one worker thread takes the first, waits `batch_wait_ms` for others, and
generates each group of requests that share max_new_tokens in one batch of forward passes
(`generate_batch`), each row sampled with its own settings: micro-batching over `model.generate`.
The model is touched by that thread only, so requests never race on it.

The persona turns a conversation (canonical `Line`s) into the prompt the dataset taught the
model to answer, through `dataset.prompt`, the builder the dataset's own windows use.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from wechat_avatar.config import AvatarConfig
from wechat_avatar.dataset.prompt import Remembered, prompt
from wechat_avatar.dataset.splits import self_name
from wechat_avatar.dataset.window import Line
from wechat_avatar.generate import BUBBLE, Generated, RowSampling, bubbles, generate_batch, reply_so_far, stop_ids
from wechat_avatar.memory.profile import persona_block, with_persona
from wechat_avatar.memory.recall import Recall
from wechat_avatar.models.load import Loaded, load_for_serving
from wechat_avatar.workspace import Workspace

Conversation = list[dict[str, str]]
EMPTY = "…"  # the bubble of a reply that came out empty (chat showed it before serve existed)


class Sampling(NamedTuple):
    """Per-request settings. Requests with the same max_new_tokens share a batch, each sampled with its
    own temperature, top_p and seed: a seeded request gets the same reply in any batch."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None  # None: the engine's seed + the request's number (replies vary, a server run replays)


@dataclass(frozen=True)
class Persona:
    """Who the avatar is and what it sees, as the dataset decided (name, system prompt, window), and, with
    memory on, what it remembers (memory/recall.py: your past exchanges, before now)."""

    name: str
    system: str
    window: int
    session_gap_ms: int
    recall: Recall | None = field(default=None, compare=False)

    @classmethod
    def of(cls, workspace: Workspace, cfg: AvatarConfig) -> Persona:
        name = self_name(workspace)
        gap = int(cfg.dataset.session_gap_hours * 3_600_000)
        recall = Recall.open(workspace, cfg) if cfg.memory.enabled else None
        system = with_persona(cfg.dataset.system_prompt.format(name=name), persona_block(workspace, cfg))
        return cls(name, system, cfg.dataset.context_window, gap, recall)

    def prompt(self, lines: list[Line]) -> Conversation:
        return prompt(lines, self.system, self.window, self.session_gap_ms, self.remember(lines))

    def remember(self, lines: list[Line]) -> list[Remembered]:
        """Memories for the reply to the friend's last words (none without memory, or with nothing heard)."""
        heard = list(itertools.takewhile(lambda line: not line.is_self, reversed(lines)))[::-1]
        if self.recall is None or not heard:
            return []
        return self.recall(heard[-1].name, " ".join(line.text for line in heard))

    def line(self, is_self: bool, name: str, text: str, ts_ms: int | None = None) -> Line:
        """A message of the conversation as the dataset would have read it."""
        return Line(0, is_self, self.name if is_self else name, text, "text", ts_ms or int(time.time() * 1000))


class Reply(NamedTuple):
    bubbles: list[str]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length

    @property
    def text(self) -> str:
        return BUBBLE.join(self.bubbles)


class Backend(Protocol):
    """What the app and chat use of a reply engine: this module's `Engine`, or `serve.vllm.VLLMEngine`."""

    persona: Persona
    backend: str
    batches: int

    @property
    def queue_depth(self) -> int: ...

    def describe(self) -> str: ...

    def health(self) -> str | None: ...

    def submit(self, conversation: Conversation, sampling: Sampling,
               on_text: Callable[[str], None] | None = None) -> Future[Reply]: ...  # fmt: skip

    def reply(self, conversation: Conversation, sampling: Sampling) -> Reply: ...

    def close(self) -> None: ...


class _Job(NamedTuple):
    conversation: Conversation
    sampling: Sampling  # its seed resolved
    future: Future[Reply]
    on_text: Callable[[str], None] | None  # called from the worker with the reply's text so far


class Engine:
    """Batched generation behind a queue. `submit` from any thread; `close` stops the worker."""

    backend = "transformers"

    def __init__(self, loaded: Loaded, persona: Persona, *, max_batch: int = 8, batch_wait_ms: float = 5.0,
                 max_prompt_tokens: int = 1024, seed: int = 0) -> None:  # fmt: skip
        self.loaded, self.persona, self.seed = loaded, persona, seed
        self.max_batch, self.batch_wait, self.max_prompt_tokens = max_batch, batch_wait_ms / 1000, max_prompt_tokens
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0  # batches generated so far (healthz; tests see requests share them)
        self._numbers = itertools.count()  # unseeded requests, numbered
        self._worker = threading.Thread(target=self._run, name="reply-engine", daemon=True)
        self._worker.start()

    @classmethod
    def open(cls, workspace: Workspace, cfg: AvatarConfig, adapter: Path | None, model: Path | None = None,
             load_in_4bit: bool = False) -> Engine:  # fmt: skip
        """The workspace's persona answering with base + adapter (default: the trained SFT one), or with
        an export folder (`model`); `load_in_4bit` holds the weights in NF4 (bitsandbytes)."""
        loaded = load_for_serving(workspace, cfg, adapter, model, load_in_4bit=load_in_4bit)
        s = cfg.serve
        return cls(loaded, Persona.of(workspace, cfg), max_batch=s.max_batch, batch_wait_ms=s.batch_wait_ms,
                   max_prompt_tokens=s.max_prompt_tokens, seed=s.seed)  # fmt: skip

    def describe(self) -> str:
        loaded = self.loaded
        return f"{loaded.base}" + (f" + {loaded.adapter}" if loaded.adapter else ", no adapter")

    @property
    def queue_depth(self) -> int:
        return self.jobs.qsize()

    def health(self) -> str | None:
        """What keeps replies from being generated (None: nothing). The model is in this process."""
        return None

    def submit(self, conversation: Conversation, sampling: Sampling,
               on_text: Callable[[str], None] | None = None) -> Future[Reply]:  # fmt: skip
        """Queue one reply; `on_text` (streaming) hears its raw text (<s> and all) after each decoding step."""
        future: Future[Reply] = Future()
        if sampling.seed is None:
            sampling = sampling._replace(seed=self.seed + next(self._numbers))
        self.jobs.put(_Job(conversation, sampling, future, on_text))
        return future

    def reply(self, conversation: Conversation, sampling: Sampling) -> Reply:
        """Blocking: the terminal chat's way in."""
        return self.submit(conversation, sampling).result()

    def close(self) -> None:
        self.jobs.put(None)
        self._worker.join(timeout=30)

    def generate(self, conversations: list[Conversation], sampling: list[Sampling],
                 watchers: list[Callable[[str], None] | None] | None = None) -> list[Generated]:  # fmt: skip
        """One batch (the worker's step; a subclass may replace it): row i with sampling[i], and
        `watchers[i]` hearing its text so far."""
        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        rows = [RowSampling(s.temperature, s.top_p, s.seed or 0) for s in sampling]
        on_tokens = None
        if watchers and any(watchers):
            stops = stop_ids(tokenizer)

            def on_tokens(rows: list[list[int]]) -> None:
                for watch, row in zip(watchers, rows, strict=True):
                    if watch is not None:
                        watch(reply_so_far(tokenizer, row, stops))

        return generate_batch(model, tokenizer, conversations, max_new_tokens=sampling[0].max_new_tokens,
                              temperature=0.0, top_p=1.0, seed=None, max_prompt_tokens=self.max_prompt_tokens,
                              on_tokens=on_tokens, rows=rows)  # fmt: skip

    def _run(self) -> None:
        while (first := self.jobs.get()) is not None:
            jobs, stop = self._gather(first)
            groups: dict[int, list[_Job]] = {}
            for job in jobs:
                if job.future.set_running_or_notify_cancel():
                    groups.setdefault(job.sampling.max_new_tokens, []).append(job)
            for group in groups.values():
                self._answer(group)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job and those that arrive within batch_wait, up to max_batch; True if told to stop."""
        jobs, deadline = [first], time.monotonic() + self.batch_wait
        while len(jobs) < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _answer(self, group: list[_Job]) -> None:
        try:
            generated = self.generate([job.conversation for job in group], [job.sampling for job in group],
                                      [job.on_text for job in group])  # fmt: skip
        except Exception as error:  # the requests fail with it; the worker keeps serving the next batch
            for job in group:
                job.future.set_exception(error)
            return
        self.batches += 1
        for job, g in zip(group, generated, strict=True):
            reply = Reply(bubbles(g.text) or [EMPTY], g.prompt_tokens, g.completion_tokens, g.finish_reason)
            job.future.set_result(reply)
