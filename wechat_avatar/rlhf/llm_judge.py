"""`rlhf judge --judge-url URL`: an LLM scores the candidates, over any OpenAI-compatible API.

One request per context to POST {url}/chat/completions: the rubric as the system message, the
context and the numbered candidates as the user message, and the model answers JSON
{"scores": [s1, …, sk]}, 1 (worst) .. k (best), ties allowed. The key is read from the environment
(WECHAT_AVATAR_JUDGE_KEY), never from a flag or a file. Chat text leaving this machine is the
user's choice: a URL that is not loopback needs `allow_remote`, and the CLI says how many contexts
go where before the first is sent. A context whose answer cannot be read keeps the offline
judge's scores and is counted.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2

from wechat_avatar.errors import UsageError

RUBRIC = """\
You judge replies written by an AI avatar of a WeChat user, who answers their friends in their place.
Score every candidate reply to the conversation from 1 (worst) to {k} (best); equal scores are allowed.
What makes a reply good, most important first:
1. Civil and gentle: no insults, swearing, contempt or brush-offs, even when the friend provokes,
   teases or picks a fight; calm, kind, de-escalating. A rude reply always scores below a civil one.
2. Sounds like the person: short chat bubbles (a reply's bubbles are joined by <s>), their words,
   their stickers and emoji codes such as [捂脸]; not formal, not an assistant.
3. Answers what the friend last said, rather than changing the subject or repeating it.
Answer with JSON only, exactly: {{"scores": [{example}]}}"""


def is_loopback(host: str) -> bool:
    # as serve.app.is_loopback (serve sits above rlhf, so it cannot be imported from here)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_remote: bool) -> str:
    """The URL's host, after refusing a URL that is none, or a remote one without `allow_remote`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--judge-url {url!r} is not an http(s) URL",
                         hint="pass an OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1")  # fmt: skip
    if not is_loopback(parts.hostname) and not allow_remote:
        raise UsageError(f"--judge-url {url} is not on this machine: your chat text would be sent to "
                         f"{parts.hostname}", hint="pass --allow-remote to send it anyway, or judge offline "
                         "(no --judge-url)")  # fmt: skip
    return parts.hostname


def user_message(source: str, responses: Sequence[str]) -> str:
    numbered = "\n".join(f"{i}. {r}" for i, r in enumerate(responses, 1))
    return f"Conversation (one message per line, `name:text`):\n{source}\n\nCandidate replies:\n{numbered}"


def scores_of(answer: str, k: int) -> tuple[float, ...]:
    """The scores in the model's answer; ValueError if there are not k numbers in 1..k."""
    match = re.search(r"\{.*\}", answer, re.S)
    if not match:
        raise ValueError("no JSON object in the answer")
    scores = json.loads(match.group(0)).get("scores")
    if not isinstance(scores, list) or len(scores) != k:
        raise ValueError(f"expected {k} scores, got {scores!r}")
    out = tuple(float(s) for s in scores)
    if any(not 1 <= s <= k for s in out):
        raise ValueError(f"scores must lie in 1..{k}, got {scores!r}")
    return out


class LLMJudge:
    """Scores through one OpenAI-compatible endpoint; `close` when done."""

    def __init__(self, url: str, model: str, key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url, self.model = url.rstrip("/"), model
        self.client = httpx2.Client(headers=headers, timeout=timeout_s, trust_env=False)

    @property
    def name(self) -> str:
        return f"llm:{self.model}"

    def score(self, source: str, responses: Sequence[str]) -> tuple[float, ...]:
        """The k scores for one context; ValueError on an answer that cannot be used."""
        k = len(responses)
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": RUBRIC.format(k=k, example=", ".join(["…"] * k))},
                {"role": "user", "content": user_message(source, responses)},
            ],
        }
        try:
            response = self.client.post(f"{self.url}/chat/completions", json=body)
        except httpx2.HTTPError as error:
            raise ValueError(f"the judge at {self.url} could not be reached ({type(error).__name__})") from None
        if response.status_code != 200:
            raise ValueError(f"the judge answered HTTP {response.status_code}")
        try:
            answer = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ValueError("the judge's answer is not a chat completion") from None
        return scores_of(str(answer), k)

    def close(self) -> None:
        self.client.close()
