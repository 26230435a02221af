"""A conversation with the avatar, shaped like the training samples (`wechat-avatar chat`).

The friend's lines go in as `name:text` user turns, the avatar's reply comes back as bubbles;
only the last `dataset.context_window` messages are kept, as in training.
"""

from __future__ import annotations

from pathlib import Path

from wechat_avatar.config import AvatarConfig, ChatConfig
from wechat_avatar.dataset.splits import self_name
from wechat_avatar.generate import BUBBLE, bubbles, generate_replies
from wechat_avatar.models.load import Loaded, load_for_inference
from wechat_avatar.workspace import Workspace


class ChatSession:
    def __init__(self, loaded: Loaded, name: str, system: str, friend: str, window: int,
                 generation: ChatConfig) -> None:  # fmt: skip
        self.loaded, self.name, self.friend, self.window = loaded, name, friend, window
        self.generation = generation
        self.system = {"role": "system", "content": system}
        self.turns: list[dict[str, str]] = []
        self.said = 0

    @classmethod
    def open(cls, workspace: Workspace, cfg: AvatarConfig, adapter: Path | None, friend: str) -> ChatSession:
        loaded = load_for_inference(workspace, cfg, adapter or workspace.trained_adapter())
        name = self_name(workspace)
        return cls(loaded, name, cfg.dataset.system_prompt.format(name=name), friend, cfg.dataset.context_window,
                   cfg.chat)  # fmt: skip

    def describe(self) -> str:
        return f"{self.loaded.base}" + (f" + {self.loaded.adapter}" if self.loaded.adapter else ", no adapter")

    def say(self, text: str) -> list[str]:
        """The friend says `text`; returns the avatar's bubbles (and remembers both).

        Each turn samples with seed + its number: a session replays exactly, yet turns differ.
        """
        self.said += 1
        self.turns.append({"role": "user", "content": f"{self.friend}:{' '.join(text.splitlines())}"})
        self._trim()
        g = self.generation
        reply = generate_replies(self.loaded.model, self.loaded.tokenizer, [[self.system, *self.turns]],
                                 max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
                                 seed=g.seed + self.said)[0]  # fmt: skip
        parts = bubbles(reply) or ["…"]
        self.turns.append({"role": "assistant", "content": BUBBLE.join(parts)})
        return parts

    def _trim(self) -> None:
        """Drop the oldest turns while more than `window` messages (lines or bubbles) are kept."""

        def size(turn: dict[str, str]) -> int:
            sep = "\n" if turn["role"] == "user" else BUBBLE
            return turn["content"].count(sep) + 1

        while len(self.turns) > 1 and sum(size(t) for t in self.turns[:-1]) >= self.window:
            self.turns.pop(0)
