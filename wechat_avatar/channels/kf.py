"""WeChat Customer Service (微信客服, WeCom KF): any WeChat user reaches the avatar through a link or QR
code, without following anything.

    GET  PATH?msg_signature&timestamp&nonce&echostr    as WeCom: decrypt echostr (receive id: the CorpID)
    POST PATH …  <Event>kf_msg_or_event</Event><Token>…</Token><OpenKfId>…</OpenKfId>   "there is news"
    POST /cgi-bin/kf/sync_msg {cursor, token, open_kfid, limit}   -> msg_list, next_cursor, has_more
    POST /cgi-bin/kf/send_msg {touser, open_kfid, msgtype: text, text: {content}}

The callback carries no message: it is acknowledged at once and the messages are pulled with
sync_msg from a cursor kept per OpenKfId in WORKSPACE/channels/kf.json, so a restart neither loses
nor repeats one. The platform allows 5 messages within 48 h of a user's message, 2048 bytes each:
a reply is fitted to that and a send past it is logged as held, not tried.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from wechat_avatar.channels.api import PlatformAPI, PlatformError
from wechat_avatar.channels.core import Core, Seen, deliver, fit
from wechat_avatar.channels.crypto import MsgCrypt
from wechat_avatar.channels.wecom import CORP_ID, TOKEN
from wechat_avatar.channels.wire import Refused, fresh, listen, opened, parse, plain
from wechat_avatar.config import ChannelsConfig, KfConfig
from wechat_avatar.errors import ConfigError
from wechat_avatar.workspace import Workspace

MAX_BYTES, MOST = 2048, 5  # per text; per user message
WINDOW_S = 48 * 3600  # replies are allowed this long after the user's message
CUSTOMER = 3  # msg_list origin: 3 the WeChat user, 4 system events, 5 a human servicer


def check(cfg: KfConfig) -> None:
    if not TOKEN.fullmatch(cfg.token):
        raise ConfigError("channels.kf.token must be 3-32 letters and digits (the callback Token)")
    if not CORP_ID.fullmatch(cfg.corp_id):
        raise ConfigError(f"channels.kf.corp_id must be the CorpID (ww + 16 letters or digits): {cfg.corp_id!r}")
    MsgCrypt(cfg.token, cfg.encoding_aes_key, cfg.corp_id)  # raises on a bad key
    if not cfg.secret:
        raise ConfigError("channels.kf.secret is needed (the 微信客服 Secret, for the access token)")


@dataclass
class Window:
    """A user's reply window: when they last wrote, and how many sends since."""

    since: float
    sent: int = 0


@dataclass
class Kf:
    core: Core
    cfg: KfConfig
    api: PlatformAPI
    state_path: Path  # WORKSPACE/channels/kf.json
    cursors: dict[str, str] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    seen: Seen = field(default_factory=Seen)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    background: set[asyncio.Future[object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.crypt = MsgCrypt(self.cfg.token, self.cfg.encoding_aes_key, self.cfg.corp_id)
        if self.state_path.is_file():
            self.cursors = json.loads(self.state_path.read_text(encoding="utf-8")).get("cursors", {})

    def app(self) -> FastAPI:
        app = FastAPI(title="wechat-avatar kf", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get(self.cfg.path)
        async def verify(request: Request) -> Response:
            try:
                return plain(opened(self.crypt, request.query_params, request.query_params.get("echostr") or ""))
            except Refused as refused:
                return refused.response()

        @app.post(self.cfg.path)
        async def push(request: Request) -> Response:
            q = request.query_params
            try:
                fresh(q.get("timestamp") or "", self.core.cfg.max_skew_s)
                fields = parse(opened(self.crypt, q, parse(await request.body()).get("Encrypt", "")).encode())
            except Refused as refused:
                return refused.response()
            if fields.get("Event") == "kf_msg_or_event" and fields.get("OpenKfId"):
                task = asyncio.ensure_future(self._pull(fields["OpenKfId"], fields.get("Token", "")))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
            return plain("")

        return app

    async def _pull(self, kfid: str, token: str) -> None:
        """Every message since the cursor, page by page; the cursor is saved after each page."""
        async with self.lock:
            try:
                while True:
                    body = {"cursor": self.cursors.get(kfid, ""), "token": token, "open_kfid": kfid, "limit": 1000}
                    page = await self.api.post("/cgi-bin/kf/sync_msg", body)
                    for msg in page.get("msg_list") or []:
                        await self._message(kfid, msg)
                    self.cursors[kfid] = str(page.get("next_cursor") or self.cursors.get(kfid, ""))
                    self._save()
                    if not page.get("has_more"):
                        return
            except PlatformError as error:
                self.core.journal.write("error", kfid, "sync_msg", error=str(error))

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps({"cursors": self.cursors}), encoding="utf-8")

    async def _message(self, kfid: str, msg: dict[str, Any]) -> None:
        user, msgid = str(msg.get("external_userid", "")), str(msg.get("msgid", ""))
        if msg.get("origin") != CUSTOMER or not user or self.seen.get(msgid):
            return
        self.seen.put(msgid, True)
        window = self.windows[user] = Window(float(msg.get("send_time") or time.time()))
        if time.time() - window.since > WINDOW_S:
            self.core.journal.write("held", user, (msg.get("text") or {}).get("content", ""),
                                    reason="the 48-hour reply window is closed")  # fmt: skip
            return
        if msg.get("msgtype") == "text":
            bubbles = (await self.core.answer(user, str(msg["text"].get("content", "")))).bubbles
        else:
            kind = str(msg.get("msgtype"))
            bubbles = [self.core.cfg.non_text_reply] if self.core.other(user, kind) == "reply" else []

        async def send(text: str) -> None:
            if window.sent >= MOST or time.time() - window.since > WINDOW_S:
                self.core.journal.write("held", user, text, reason="5 messages per user message within 48 h")
                return
            body = {"touser": user, "open_kfid": kfid, "msgtype": "text", "text": {"content": text}}
            await self.api.post("/cgi-bin/kf/send_msg", body)
            window.sent += 1
            self.core.journal.write("out", user, text, how="kf/send_msg")

        try:
            await deliver(fit(bubbles, MOST, MAX_BYTES), send, self.core.pace, self.core.guard)
        except PlatformError as error:
            self.core.journal.write("error", user, bubbles, error=str(error))


async def start(workspace: Workspace, cfg: ChannelsConfig, say: Callable[[str], None]) -> None:
    kf = cfg.kf
    check(kf)
    core = Core(workspace, cfg, "kf")
    await core.avatar.ready()
    api = PlatformAPI(kf.api_base, "/cgi-bin/gettoken", {"corpid": kf.corp_id, "corpsecret": kf.secret})
    await api.token()  # a wrong CorpID or Secret fails here, in one line
    say(f"kf: {core.guard.describe()}")
    say(f"kf: callback URL http://{cfg.host}:{cfg.port}{kf.path} (put HTTPS in front of it for WeCom)")
    await listen(Kf(core, kf, api, workspace.channel_state("kf")).app(), cfg.host, cfg.port)
