"""ClawBot (Tencent's iLink bot API) as the owner's console: chat with your avatar from your phone,
or paste a friend's message (`@name: …`) and get back the reply your avatar would send them.

    GET  /ilink/bot/get_bot_qrcode?bot_type=3          -> qrcode, qrcode_img_content (the link to scan)
    GET  /ilink/bot/get_qrcode_status?qrcode=…         -> wait | scaned | confirmed (bot_token, ilink_user_id) | expired
    POST /ilink/bot/getupdates {get_updates_buf}       long poll -> msgs, the next cursor; ret/errcode -14: log in again
    POST /ilink/bot/sendmessage {msg: {to_user_id, client_id, message_type 2, message_state 2, item_list,
                                       context_token}}  ret -2: rate limited

The credentials and the cursor live in WORKSPACE/channels/clawbot.json, mode 600. Sends are at least
min_gap_s apart across the whole bot (iLink throttles bursts), at most max_bubbles per incoming message,
and a ret=-2 waits backoff_s (doubling) before the same send is tried again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from wechat_avatar.channels.core import ChannelError, Core, Seen, deliver, fit
from wechat_avatar.config import ChannelsConfig, ClawBotConfig
from wechat_avatar.workspace import Workspace

SESSION_EXPIRED = -14
RATE_LIMITED = -2
MAX_CHARS = 4000  # the official plugin's text chunk
RETRIES = 4  # tries of one send through ret=-2 before it is logged as not sent
MODES = {True: "草稿模式：发来朋友的话（可先写 @名字:），我回你分身会怎么回", False: "聊天模式：和你的分身聊天"}
DRAFT = re.compile(r"@\s*([^:：\s][^:：]{0,40})\s*[:：]\s*(.+)", re.S)


class ILink:
    """The iLink HTTP API with the headers every call carries."""

    def __init__(self, cfg: ClawBotConfig, timeout_s: float) -> None:
        self.cfg, self.token = cfg, ""
        self.client = httpx2.AsyncClient(base_url=cfg.base_url.rstrip("/"), timeout=timeout_s)
        major, minor, patch = (int(x) for x in [*cfg.channel_version.split("."), "0", "0"][:3])
        self.version = str(major << 16 | minor << 8 | patch)

    def headers(self) -> dict[str, str]:
        uin = base64.b64encode(str(random.getrandbits(32)).encode()).decode()
        return {"AuthorizationType": "ilink_bot_token", "Authorization": f"Bearer {self.token}", "X-WECHAT-UIN": uin,
                "iLink-App-Id": "bot", "iLink-App-ClientVersion": self.version}  # fmt: skip

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        return await self._json(self.client.get(path, params=params, timeout=self.cfg.long_poll_s + 10))

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "base_info": {"channel_version": self.cfg.channel_version}}
        return await self._json(self.client.post(path, json=body, headers=self.headers(),
                                                 timeout=self.cfg.long_poll_s + 10))  # fmt: skip

    async def _json(self, call: Any) -> dict[str, Any]:
        try:
            data = (await call).json()
        except (httpx2.HTTPError, ValueError) as error:
            raise ChannelError(f"iLink: {type(error).__name__}: {error}") from None
        if not isinstance(data, dict):
            raise ChannelError("iLink: the answer is not a JSON object")
        return data


class State:
    """clawbot.json: the bot token, the owner, the getupdates cursor; written mode 600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


async def login(api: ILink, state: State, say: Callable[[str], None]) -> None:
    """Show the QR (in the terminal and as a link) until it is scanned and confirmed; keep the token."""
    import segno

    while True:
        qr = await api.get("/ilink/bot/get_bot_qrcode", bot_type=api.cfg.bot_type)
        link = str(qr.get("qrcode_img_content") or "")
        if not qr.get("qrcode") or not link:
            raise ChannelError(f"iLink gave no login QR code: {qr}")
        say(f"clawbot: scan with WeChat (>= 8.0.69) to log in: {link}")
        say(segno.make(link, error="l").terminal(compact=True) or "")  # type: ignore[func-returns-value]
        while True:
            status = await api.get("/ilink/bot/get_qrcode_status", qrcode=str(qr["qrcode"]))
            if status.get("status") == "confirmed":
                api.token = str(status["bot_token"])
                state.data = {"bot_token": api.token, "ilink_bot_id": status.get("ilink_bot_id", ""),
                              "ilink_user_id": status.get("ilink_user_id", ""), "get_updates_buf": ""}  # fmt: skip
                state.save()
                say(f"clawbot: logged in; owner {state.data['ilink_user_id']}")
                return
            if status.get("status") == "expired":
                say("clawbot: the QR code expired; here is a new one")
                break
            await asyncio.sleep(0.2)


class Sender:
    """One bot's sends: min_gap_s apart, backing off on ret=-2."""

    def __init__(self, api: ILink, cfg: ClawBotConfig) -> None:
        self.api, self.cfg, self.last = api, cfg, 0.0

    async def send(self, to: str, context_token: str, text: str) -> None:
        backoff = self.cfg.backoff_s
        for _ in range(RETRIES):
            await asyncio.sleep(max(0.0, self.last + self.cfg.min_gap_s - time.monotonic()))
            msg = {"from_user_id": "", "to_user_id": to, "client_id": uuid.uuid4().hex, "message_type": 2,
                   "message_state": 2, "item_list": [{"type": 1, "text_item": {"text": text}}],
                   "context_token": context_token}  # fmt: skip
            answer = await self.api.post("/ilink/bot/sendmessage", {"msg": msg})
            self.last = time.monotonic()
            if answer.get("ret", 0) != RATE_LIMITED:
                if answer.get("ret", 0) or answer.get("errcode", 0):
                    raise ChannelError(f"sendmessage: ret {answer.get('ret')}: {answer.get('errmsg', '')}")
                return
            await asyncio.sleep(backoff)  # rate limited: wait, don't hammer
            backoff *= 2
        raise ChannelError("sendmessage: still rate limited (ret=-2) after backing off")


class Console:
    """The owner's chat: their messages to the avatar, or drafts for a friend."""

    def __init__(self, core: Core, sender: Sender, cfg: ClawBotConfig) -> None:
        self.core, self.sender, self.cfg = core, sender, cfg
        self.seen, self.drafting = Seen(), False

    async def handle(self, m: dict[str, Any]) -> None:
        if m.get("message_type") != 1 or self.seen.get(str(m.get("message_id"))):
            return
        self.seen.put(str(m.get("message_id")), True)
        user, token = str(m.get("from_user_id", "")), str(m.get("context_token", ""))
        texts = [i.get("text_item", {}).get("text", "") for i in m.get("item_list", []) if i.get("type") == 1]
        text = "\n".join(t for t in texts if t).strip()
        if not text:
            if self.core.other(user, "non-text") == "reply":
                await self._send(user, token, [self.core.cfg.non_text_reply])
            return
        if text in ("/draft", "/chat"):
            self.drafting = text == "/draft"
            line = (
                "草稿模式：发来朋友的话（可先写 @名字:），我回你分身会怎么回"
                if self.drafting
                else "聊天模式：和你的分身聊天"
            )
            await self._send(user, token, [line])
            return
        friend = None
        if found := DRAFT.fullmatch(text):
            friend, text = found.group(1).strip(), found.group(2).strip()
        elif self.drafting:
            friend = self.cfg.draft_friend
        answer = await self.core.answer(user, text, friend)
        await self._send(user, token, answer.bubbles)

    async def _send(self, user: str, token: str, bubbles: list[str]) -> None:
        async def send(text: str) -> None:
            await self.sender.send(user, token, text)
            self.core.journal.write("out", user, text)

        try:
            await deliver(fit(bubbles, self.cfg.max_bubbles, None), send, self.core.pace, self.core.guard)
        except ChannelError as error:
            self.core.journal.write("error", user, bubbles, error=str(error))


async def start(workspace: Workspace, cfg: ChannelsConfig, say: Callable[[str], None]) -> None:
    """Log in (or reuse clawbot.json), then answer the owner's messages until stopped."""
    bot = cfg.clawbot
    api, state = ILink(bot, cfg.timeout_s), State(workspace.channel_state("clawbot"))
    await Core(workspace, cfg, "clawbot").avatar.ready()
    if state.data.get("bot_token"):
        api.token = str(state.data["bot_token"])
    else:
        await login(api, state, say)
    owner = str(state.data.get("ilink_user_id", ""))
    core = Core(workspace, cfg, "clawbot", always=frozenset({owner}))
    say(f"clawbot: answering its owner {owner}; {core.guard.describe()}")
    console = Console(core, Sender(api, bot), bot)
    while True:
        try:
            updates = await api.post(
                "/ilink/bot/getupdates", {"get_updates_buf": state.data.get("get_updates_buf", "")}
            )
        except ChannelError as error:  # the network or iLink hiccuped: a long-running console waits and goes on
            say(f"clawbot: getupdates failed ({error}); retrying")
            await asyncio.sleep(2)
            continue
        if SESSION_EXPIRED in (updates.get("ret"), updates.get("errcode")):
            say("clawbot: the session expired; log in again")
            await login(api, state, say)
            continue
        if updates.get("ret", 0) or updates.get("errcode", 0):
            say(f"clawbot: getupdates: ret {updates.get('ret')} {updates.get('errmsg', '')}; retrying")
            await asyncio.sleep(2)
            continue
        state.data["get_updates_buf"] = updates.get("get_updates_buf", state.data.get("get_updates_buf", ""))
        state.save()
        for message in updates.get("msgs") or []:
            await console.handle(message)
