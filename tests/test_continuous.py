"""The continuous-batching reply engine against the micro-batching one and plain `generate`.

Two models: the tiny workspace's base + SFT adapter (the peft model `serve` loads; greedy, it ends at
once, so its tests sample with seeds and meet real stop tokens), and a random-init Qwen2 with wide
weights (greedy, it never stops: replies run to max_new_tokens and differ from prompt to prompt).
Few tokens each; nothing is timed.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_serve import running

from wechat_avatar.config import AvatarConfig, ServeConfig, TinyModelConfig, load_config
from wechat_avatar.generate import bubbles, generate_batch
from wechat_avatar.models.load import Loaded, load_for_inference
from wechat_avatar.models.tiny import random_model
from wechat_avatar.serve.app import Settings, build_app
from wechat_avatar.serve.continuous import ContinuousEngine
from wechat_avatar.serve.engine import Engine, Persona, Reply, Sampling
from wechat_avatar.serve.engines import open_engine
from wechat_avatar.serve.friends import Friends
from wechat_avatar.workspace import Workspace

TEXTS = ["在吗", "吃饭去？今晚", "好", "明天几点到"]


def greedy(tokens: int) -> Sampling:
    return Sampling(tokens, 0.0, 1.0, 0)


@pytest.fixture(scope="module")
def workspace(tiny_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(shutil.copytree(tiny_workspace, tmp_path_factory.mktemp("continuous") / "workspace"))


@pytest.fixture(scope="module")
def cfg(tiny_config: Path) -> AvatarConfig:
    return load_config(tiny_config)


@pytest.fixture(scope="module")
def persona(workspace: Workspace, cfg: AvatarConfig) -> Persona:
    return Persona.of(workspace, cfg)


@pytest.fixture(scope="module")
def trained(workspace: Workspace, cfg: AvatarConfig) -> Loaded:
    return load_for_inference(workspace, cfg, workspace.trained_adapter())


@pytest.fixture(scope="module")
def noisy(trained: Loaded) -> Loaded:
    """A random Qwen2 on the workspace's vocabulary whose greedy replies say something different per prompt."""
    import torch

    model = random_model(TinyModelConfig(hidden_size=64, layers=2, heads=4, kv_heads=2), trained.tokenizer)
    with torch.no_grad():
        for weight in model.parameters():
            weight.normal_(0.0, 0.3)  # the default 0.02 makes every prompt answer the same token forever
    return Loaded(model.eval(), trained.tokenizer, "random", None)


@pytest.fixture(scope="module")
def engines(noisy: Loaded, persona: Persona) -> Iterator[tuple[ContinuousEngine, Engine]]:
    continuous, micro = ContinuousEngine(noisy, persona), Engine(noisy, persona)
    yield continuous, micro
    continuous.close()
    micro.close()


def conversations(persona: Persona) -> list[list[dict[str, str]]]:
    return [persona.prompt([persona.line(False, "胡三行", text)]) for text in TEXTS]


def test_greedy_replies_equal_micro_batching_and_plain_generate(engines: tuple[ContinuousEngine, Engine],
                                                                noisy: Loaded, persona: Persona) -> None:  # fmt: skip
    continuous, micro = engines
    asks = conversations(persona)
    lengths = [8, 3, 12, 5]
    plain = [generate_batch(noisy.model, noisy.tokenizer, [c], max_new_tokens=n, temperature=0.0, top_p=1.0,
                            seed=None)[0] for c, n in zip(asks, lengths, strict=True)]  # fmt: skip
    by_micro = [micro.reply(c, greedy(n)) for c, n in zip(asks, lengths, strict=True)]
    alone = [continuous.reply(c, greedy(n)) for c, n in zip(asks, lengths, strict=True)]
    before = continuous.batches
    futures = [continuous.submit(c, greedy(n)) for c, n in zip(asks, lengths, strict=True)]
    together = [f.result(timeout=60) for f in futures]
    steps = continuous.batches - before
    assert [r.bubbles for r in alone] == [bubbles(g.text) for g in plain] == [r.bubbles for r in by_micro]
    assert together == alone == by_micro  # tokens counted alike, too
    assert [r.completion_tokens for r in together] == lengths and {r.finish_reason for r in together} == {"length"}
    assert [r.prompt_tokens for r in together] == [g.prompt_tokens for g in plain]
    assert len({tuple(r.bubbles) for r in together}) == len(asks)  # the prompts made a difference
    assert steps < sum(lengths)  # different lengths shared forward passes


def test_seeded_replies_hold_in_any_batch_and_stop_at_a_stop_token(trained: Loaded, persona: Persona) -> None:
    asks = [persona.prompt([persona.line(False, "胡三行", TEXTS[i % 4])]) for i in range(8)]
    sampled = [Sampling(32, 1.0 if i % 2 else 0.9, 0.95 if i % 3 else 1.0, i) for i in range(8)]
    micro = Engine(trained, persona)
    try:
        by_micro = [micro.reply(c, s) for c, s in zip(asks, sampled, strict=True)]
    finally:
        micro.close()
    continuous = ContinuousEngine(trained, persona)  # the peft model itself, as `serve` loads it
    try:
        futures = [continuous.submit(c, s) for c, s in zip(asks, sampled, strict=True)]
        together = [f.result(timeout=60) for f in futures]
    finally:
        continuous.close()
    assert together == by_micro
    stopped = [r for r in together if r.finish_reason == "stop"]
    assert stopped and all(r.completion_tokens < 32 for r in stopped)  # a stop token ended them early
    assert all(r.completion_tokens == 32 for r in together if r.finish_reason == "length")
    assert len({r.text for r in together}) > 4  # the seeds made a difference


def test_streaming_hears_the_reply_grow_out_of_the_batch(engines: tuple[ContinuousEngine, Engine],
                                                         persona: Persona) -> None:  # fmt: skip
    continuous, _ = engines
    asks = conversations(persona)
    heard: list[list[str]] = [[] for _ in asks]
    futures = [continuous.submit(c, greedy(4 + 2 * i), heard[i].append) for i, c in enumerate(asks)]
    replies = [f.result(timeout=60) for f in futures]
    for texts, reply, i in zip(heard, replies, range(len(asks)), strict=True):
        assert len(texts) == 4 + 2 * i  # once per decoding step
        assert all(b.startswith(a) for a, b in itertools.pairwise(texts))  # only ever growing
        assert bubbles(texts[-1].strip()) == reply.bubbles  # ending in the final reply
    assert replies == [continuous.reply(c, greedy(4 + 2 * i)) for i, c in enumerate(asks)]


class Poisoned(ContinuousEngine):
    """Feeds a token id past the vocabulary for one conversation: its forward pass raises inside the loop."""

    def tokens(self, conversation: list[dict[str, str]]) -> list[int]:
        ids = super().tokens(conversation)
        return [*ids, 10**6] if "毒" in conversation[-1]["content"] else ids


def test_a_failing_request_fails_alone_and_the_engine_keeps_serving(noisy: Loaded, persona: Persona) -> None:
    engine = Poisoned(noisy, persona)
    try:
        good = conversations(persona)[0]
        before = engine.reply(good, greedy(6))
        broken = engine.submit([{"role": "user"}], greedy(6))  # the chat template cannot render it
        with pytest.raises(Exception, match="content"):
            broken.result(timeout=60)
        first = engine.manager
        poisoned = engine.submit(persona.prompt([persona.line(False, "胡三行", "毒")]), greedy(6))
        with pytest.raises(RuntimeError, match="generation failed"):
            poisoned.result(timeout=60)
        assert engine.reply(good, greedy(6)) == before  # a fresh loop, the same reply
        assert engine.manager is not first and not first.is_running()  # the dead loop was replaced
        assert engine.queue_depth == 0 and engine.manager.is_running()
    finally:
        engine.close()


def test_a_cancelled_request_leaves_the_batch(engines: tuple[ContinuousEngine, Engine], persona: Persona) -> None:
    continuous, _ = engines
    asks = conversations(persona)
    started = threading.Event()
    long = continuous.submit(asks[0], greedy(400), lambda text: started.set())
    assert started.wait(60)
    assert long.cancel() and long.cancelled()
    assert continuous.queue_depth == 0
    assert continuous.reply(asks[1], greedy(3)).completion_tokens == 3


def test_close_lets_replies_in_flight_finish_then_stops(noisy: Loaded, persona: Persona) -> None:
    engine = ContinuousEngine(noisy, persona)
    attention = noisy.model.config._attn_implementation
    in_flight = engine.submit(conversations(persona)[2], greedy(10))
    engine.close()
    assert isinstance(in_flight.result(timeout=0), Reply) and in_flight.result().completion_tokens == 10
    assert not engine.manager.is_running() and not engine._dispatcher.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit(conversations(persona)[0], greedy(3)).result(timeout=0)
    assert noisy.model.config._attn_implementation == attention  # the model is left as it was


def test_open_engine_follows_serve_batching(workspace: Workspace, cfg: AvatarConfig) -> None:
    for batching, kind in (("micro", Engine), ("continuous", ContinuousEngine)):
        engine = open_engine(workspace, cfg.model_copy(update={"serve": ServeConfig(batching=batching)}), None)
        try:
            assert type(engine) is kind and "builtin:tiny-qwen2 + " in engine.describe()
        finally:
            engine.close()
    assert ServeConfig().batching == "continuous"


# --- the app on it ------------------------------------------------------------------------------------------------


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_serve_app_on_the_continuous_engine(workspace: Workspace, trained: Loaded, persona: Persona,
                                                tmp_path: Path) -> None:  # fmt: skip
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    engine = ContinuousEngine(trained, persona)
    settings = Settings(ServeConfig(temperature=0.0, max_new_tokens=6), tmp_path / "s.db", Friends.of(workspace))
    try:
        with running(build_app(settings, engine)) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
            asked = {"model": "x", "messages": [{"role": "user", "content": "在吗"}], "temperature": 1.0, "seed": 1,
                     "max_tokens": 8}  # fmt: skip
            whole = client.chat.completions.create(**asked)
            chunks = list(client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True}))
            with ThreadPoolExecutor(6) as pool:  # concurrent native requests, each its own friend and seed
                native = list(pool.map(lambda i: post(f"{url}/v1/avatar/reply", {"friend": f"朋友{i}",
                    "message": TEXTS[i % 4], "temperature": 1.0, "seed": i, "max_tokens": 8}), range(6)))  # fmt: skip
            with urllib.request.urlopen(f"{url}/healthz", timeout=60) as response:
                health = json.loads(response.read())
    finally:
        engine.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content and text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed, not in one piece
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    micro = Engine(trained, persona)
    try:
        alone = [micro.reply(persona.prompt([persona.line(False, f"朋友{i}", TEXTS[i % 4])]),
                             Sampling(8, 1.0, settings.serve.top_p, i)).bubbles for i in range(6)]  # fmt: skip
    finally:
        micro.close()
    assert [r["bubbles"] for r in native] == alone  # each reply is the one its own request asked for
    assert health["model_loaded"] and health["backend"] == "transformers" and health["queue_depth"] == 0
