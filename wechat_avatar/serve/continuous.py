"""The continuous-batching reply engine: transformers' own scheduler and paged KV cache, our stops and sampling.

transformers 5.24 ships the engine behind `transformers serve --continuous-batching`: a background
loop (`ContinuousBatchingManager`) that admits requests between decoding steps and frees each one's
cache blocks as it ends, so a short reply never waits for a long one and a new request joins at the
next step instead of the next batch. It runs on CPU and GPU, through our peft (base + LoRA) model
as well as a merged folder. This engine has the same surface as `serve.engine.Engine` (micro-batching
over `generate`), so the app and the terminal chat use either; `serve.batching` picks one.

What the manager honours per request, and how the rest is made to hold:
    max_new_tokens, stop tokens   per request (`add_request(max_new_tokens=, eos_token_id=)`)
    streaming                     per request: every step's tokens reach `on_text` as the reply so far
    cancel                        `future.cancel()` frees the request's slot at the next step
    temperature, top_p, seed      not natively: the manager takes one `do_sample` for all requests, and
                                  samples from one global torch RNG, so a seeded reply would depend on
                                  its neighbours. `RowPicker`, a per-request processor of the manager's
                                  own kind, picks each sampled row's token with that request's settings
                                  and its own generator (the micro engine's `_pick`), leaving the chosen
                                  token the only one possible; decoding is greedy after it. So every
                                  request is served here, none falls back: a seeded reply is the same
                                  alone, in any batch, and in either engine.

The first forward pays a warm-up; a one-token request at start pays it before the first client does.
If the loop itself dies (a forward pass raised), the requests in it fail and a fresh manager starts.

`serve.batching` defaults to continuous, from benchmarks/serve.py (figures in the README): on a
2-core CPU it serves as many or more tokens/s than micro-batching from 1 to 8 concurrent clients
(tiny preset 1.1-1.6x; SmolLM2-135M 1.0-1.4x when requests ask for different max_tokens, as real
clients do), with a much shorter time to first token under load, because a request joins the batch
at the next step instead of waiting for the running batch to end. Micro-batching wins when many
requests of one max_tokens arrive together (SmolLM2 at 16 clients: 1.3-1.6x): set
`serve.batching: micro` for that load.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ClassVar, NamedTuple

from wechat_avatar.config import ServeConfig
from wechat_avatar.generate import RowSampling, _pick, bubbles, reply_so_far, stop_ids
from wechat_avatar.models.load import Loaded
from wechat_avatar.serve.engine import EMPTY, Conversation, Persona, Reply, Sampling

log = logging.getLogger(__name__)
PAGE = 256  # tokens per cache page (transformers' default)


class _Job(NamedTuple):
    prompt_tokens: int
    future: Future[Reply]
    on_text: Callable[[str], None] | None  # called from the dispatcher thread with the reply's text so far


class ContinuousEngine:
    """Continuous batching behind `submit`; one dispatcher thread routes the manager's outputs to futures."""

    backend = "transformers"

    def __init__(self, loaded: Loaded, persona: Persona, *, max_batch: int = 8, max_prompt_tokens: int = 1024,
                 max_new_tokens: int = 512, seed: int = 0) -> None:  # fmt: skip
        self.loaded, self.persona, self.seed = loaded, persona, seed
        self.max_batch, self.max_prompt_tokens, self.max_new_tokens = max_batch, max_prompt_tokens, max_new_tokens
        self.stops = stop_ids(loaded.tokenizer)
        self.picker = _row_picker()
        self.jobs: dict[str, _Job] = {}
        self._numbers = itertools.count()  # request ids, and unseeded requests' seeds
        self._lock = threading.RLock()  # submit and restart: a request goes to the manager that is running
        self._closed = threading.Event()
        self._steps_before = 0  # forward passes of managers that were replaced
        self.manager = self._start_manager()
        self._dispatcher = threading.Thread(target=self._dispatch, name="reply-dispatcher", daemon=True)
        self._dispatcher.start()
        try:
            self.reply([{"role": "user", "content": "hi"}], Sampling(1, 0.0, 1.0, 0))  # pay the warm-up now
        except BaseException:
            self.close()  # the loop's thread is not a daemon: left running, it would keep the process alive
            raise

    @classmethod
    def open(cls, loaded: Loaded, persona: Persona, serve: ServeConfig) -> ContinuousEngine:
        """From the serve: section of avatar.yaml."""
        return cls(loaded, persona, max_batch=serve.max_batch, max_prompt_tokens=serve.max_prompt_tokens,
                   max_new_tokens=serve.max_tokens_limit, seed=serve.seed)  # fmt: skip

    def describe(self) -> str:
        loaded = self.loaded
        return f"{loaded.base}" + (f" + {loaded.adapter}" if loaded.adapter else ", no adapter")

    def health(self) -> str | None:
        """What keeps replies from being generated (None: nothing). The model is in this process."""
        return None

    @property
    def queue_depth(self) -> int:
        """Requests the engine holds: waiting for a slot or decoding."""
        return len(self.jobs)

    @property
    def batches(self) -> int:
        """Forward passes so far, each shared by every request decoding at that step."""
        return self._steps_before + getattr(self.manager, "current_batch", 0)

    def submit(self, conversation: Conversation, sampling: Sampling,
               on_text: Callable[[str], None] | None = None) -> Future[Reply]:  # fmt: skip
        """Queue one reply; `on_text` (streaming) hears its raw text (<s> and all) after each decoding step."""
        future: Future[Reply] = Future()
        number = next(self._numbers)
        seed = self.seed + number if sampling.seed is None else sampling.seed
        try:
            ids = self.tokens(conversation)
        except Exception as error:  # a conversation the chat template cannot render fails alone
            future.set_exception(error)
            return future
        rid = f"reply-{number}"
        with self._lock:
            if self._closed.is_set():
                future.set_exception(RuntimeError("the reply engine is closed"))
                return future
            if not self.manager.is_running():
                self._restart(self.manager)
            self.jobs[rid] = _Job(len(ids), future, on_text)
            self.picker.slots[number] = RowSampling(sampling.temperature, sampling.top_p, seed)
            added = self.manager.add_request(ids, request_id=rid, max_new_tokens=min(sampling.max_new_tokens,
                                             self.max_new_tokens), streaming=on_text is not None,
                                             eos_token_id=self.stops, slot=number)  # fmt: skip
        if added is None:
            self._finish(rid, error=RuntimeError("the generation loop is not accepting requests"))
        future.add_done_callback(lambda f: self._cancelled(rid, number) if f.cancelled() else None)
        return future

    def reply(self, conversation: Conversation, sampling: Sampling) -> Reply:
        """Blocking: the terminal chat's way in."""
        return self.submit(conversation, sampling).result()

    def close(self) -> None:
        """Stop taking requests, let those in flight finish (30 s at most), then stop the loop."""
        with self._lock:
            self._closed.set()
            self.manager.stop(block=True, timeout=30)
            if self.manager.is_running():  # still decoding after 30 s: the rest fail
                self.manager.stop(block=True, timeout=30, hard_stop=True)
        self._dispatcher.join(timeout=30)
        for rid in list(self.jobs):
            self._finish(rid, error=RuntimeError("the reply engine closed before this reply was done"))

    def tokens(self, conversation: Conversation) -> list[int]:
        """The prompt's token ids, as the micro engine feeds them (oldest tokens cut past max_prompt_tokens)."""
        tokenizer = self.loaded.tokenizer
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"][-self.max_prompt_tokens :])

    # --- the manager --------------------------------------------------------------------------------------------

    def _start_manager(self) -> Any:
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        tokenizer = self.loaded.tokenizer
        per_request = math.ceil((self.max_prompt_tokens + self.max_new_tokens) / PAGE)
        # sized for max_batch whole requests, not transformers' default (60 % of free RAM on a CPU)
        cb = ContinuousBatchingConfig(page_size=PAGE, num_blocks=per_request * self.max_batch + 1,
                                      max_batch_tokens=max(512, self.max_prompt_tokens),
                                      max_requests_per_batch=self.max_batch, seed=self.seed)  # fmt: skip
        # greedy over what RowPicker left: sampled rows keep one token, greedy rows keep their logits
        gc = GenerationConfig(do_sample=False, eos_token_id=self.stops, pad_token_id=tokenizer.pad_token_id,
                              max_new_tokens=self.max_new_tokens)  # fmt: skip
        manager = self.loaded.model.init_continuous_batching(generation_config=gc, continuous_batching_config=cb)
        manager.logit_processor = self.picker.as_list()  # before start: the loop builds its batches with it
        manager.start()
        return manager

    def _restart(self, old: Any) -> None:
        """A fresh manager after `old`'s loop died: what it delivered is routed, the rest fails."""
        with self._lock:
            if self.manager is not old or self._closed.is_set():  # restarted already, or closing
                return
            self._steps_before += getattr(old, "current_batch", 0)
            for output in _drain(old):
                self._route(output)
            old.stop(block=True, timeout=30)  # restores the model's attention implementation
            for rid in list(self.jobs):
                self._finish(rid, error=RuntimeError("the generation loop failed while decoding this reply"))
            self.manager = self._start_manager()

    def _dispatch(self) -> None:
        """Route every output until the engine is closed and its loop has delivered its last one."""
        while True:
            manager = self.manager
            if (output := manager.get_result(timeout=0.1)) is not None:
                self._route(output)
            elif manager.is_running():
                continue
            elif self._closed.is_set():
                return
            else:
                log.error("the continuous-batching loop stopped; starting a new one")
                self._restart(manager)

    def _route(self, output: Any) -> None:
        job = self.jobs.get(output.request_id)
        if job is None:  # cancelled, or the warm-up's leftovers
            return
        if output.error is not None:
            self._finish(output.request_id, error=RuntimeError(f"generation failed: {output.error}"))
            return
        tokens = list(output.generated_tokens)
        raw = reply_so_far(self.loaded.tokenizer, tokens, self.stops)
        if job.on_text is not None:  # every step, the last one included (as the micro engine's listeners hear)
            try:
                job.on_text(raw)
            except Exception:  # a listener's failure must not stop the other replies
                log.exception("a streaming listener failed")
        if not output.is_finished():
            return
        text = raw.strip()
        finish = "stop" if tokens and tokens[-1] in self.stops else "length"
        self._finish(output.request_id, Reply(bubbles(text) or [EMPTY], job.prompt_tokens, len(tokens), finish))

    def _finish(self, rid: str, reply: Reply | None = None, error: Exception | None = None) -> None:
        job = self.jobs.pop(rid, None)
        self.picker.slots.pop(int(rid.rsplit("-", 1)[1]), None)
        if job is None or not job.future.set_running_or_notify_cancel():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(reply)

    def _cancelled(self, rid: str, number: int) -> None:
        if self.jobs.pop(rid, None) is not None:
            self.picker.slots.pop(number, None)
            self.manager.cancel_request(rid)


def _drain(manager: Any) -> list[Any]:
    outputs = []
    while (output := manager.get_result(timeout=0)) is not None:
        outputs.append(output)
    return outputs


def _row_picker() -> Any:
    """A per-request logits processor of the manager's own kind (`ContinuousBatchingLogitsProcessor`): each
    request carries its slot number, and a sampled row gets its token from that slot's settings and generator."""
    import torch
    from transformers import LogitsProcessorList
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingLogitsProcessor,
        ContinuousBatchingLogitsProcessorList,
    )

    class RowPicker(ContinuousBatchingLogitsProcessor):
        supported_kwargs: ClassVar[dict[str, type]] = {"slot": int}  # add_request(..., slot=n), checked
        ignored_kwargs: tuple[str, ...] = ()

        def __init__(self) -> None:
            self.slots: dict[int, RowSampling] = {}
            self.generators: dict[int, Any] = {}

        def fill_defaults(self, int32_tensor: Any) -> None:
            int32_tensor.fill_(-1)  # rows of no request (padding): left as they are

        def prepare_tensor_args(self, requests_with_new_token: list[Any]) -> Any:
            slots = [r.state.logit_processor_kwargs.get("slot", -1) for r in requests_with_new_token]
            return torch.tensor(slots, dtype=torch.int32)

        def __call__(self, scores: Any, tensor_arg: Any) -> Any:
            sampled = [(i, n, row) for i, n in enumerate(tensor_arg[: scores.size(0)].tolist())
                       if (row := self.slots.get(n)) is not None and row.temperature > 0]  # fmt: skip
            if not sampled:
                return scores
            for i, n, row in sampled:
                generator = self.generators.setdefault(n, torch.Generator().manual_seed(row.seed))
                token = _pick(scores[i].float().cpu(), row, generator)
                scores[i] = float("-inf")
                scores[i, token] = 0.0
            self._forget()
            return scores

        def _forget(self) -> None:
            for n in [n for n in self.generators if n not in self.slots]:  # requests that ended
                del self.generators[n]

        def as_list(self) -> Any:
            processors = ContinuousBatchingLogitsProcessorList(LogitsProcessorList([self]))
            processors.tensors_required = 1  # one int32 row of slot numbers (set when converting stock processors)
            return processors

    return RowPicker()
