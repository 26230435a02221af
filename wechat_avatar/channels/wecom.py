"""WeCom (企业微信) self-built app callback: the app's members chat with the avatar.

    GET  PATH?msg_signature&timestamp&nonce&echostr    echostr is encrypted: check, decrypt, answer the plaintext
    POST PATH?msg_signature&timestamp&nonce            <xml><ToUserName/><AgentID/><Encrypt/></xml>

Every push is acknowledged at once with an empty 200 (WeCom retries a slow one); the reply follows
through message/send with a cached access token, bubble by bubble, paced. Receive id: the CorpID.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import Response

from wechat_avatar.channels.api import PlatformAPI, PlatformError
from wechat_avatar.channels.core import Core, Seen, deliver, fit
from wechat_avatar.channels.crypto import MsgCrypt
from wechat_avatar.channels.wire import Refused, fresh, listen, opened, parse, plain
from wechat_avatar.config import ChannelsConfig, WeComConfig
from wechat_avatar.errors import ConfigError
from wechat_avatar.workspace import Workspace

MAX_BYTES, MOST = 2048, 20
TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
CORP_ID = re.compile(r"w[wx][0-9A-Za-z]{16}")


def check(cfg: WeComConfig) -> None:
    if not TOKEN.fullmatch(cfg.token):
        raise ConfigError("channels.wecom.token must be 3-32 letters and digits (the callback Token)")
    if not CORP_ID.fullmatch(cfg.corp_id):
        raise ConfigError(
            f"channels.wecom.corp_id must be the CorpID (ww and 16 letters or digits), got {cfg.corp_id!r}"
        )
    MsgCrypt(cfg.token, cfg.encoding_aes_key, cfg.corp_id)  # raises on a bad key
    if not cfg.corp_secret or not cfg.agent_id:
        raise ConfigError("channels.wecom needs corp_secret and agent_id (to send the replies)")


@dataclass
class WeComApp:
    core: Core
    cfg: WeComConfig
    api: PlatformAPI
    seen: Seen = field(default_factory=Seen)
    background: set[asyncio.Future[object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.crypt = MsgCrypt(self.cfg.token, self.cfg.encoding_aes_key, self.cfg.corp_id)

    def app(self) -> FastAPI:
        app = FastAPI(title="wechat-avatar wecom", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get(self.cfg.path)
        async def verify(request: Request) -> Response:
            q = request.query_params
            try:
                return plain(opened(self.crypt, q, q.get("echostr") or ""))
            except Refused as refused:
                return refused.response()

        @app.post(self.cfg.path)
        async def push(request: Request) -> Response:
            q = request.query_params
            try:
                fresh(q.get("timestamp") or "", self.core.cfg.max_skew_s)
                outer = parse(await request.body())
                fields = parse(opened(self.crypt, q, outer.get("Encrypt", "")).encode())
            except Refused as refused:
                return refused.response()
            key = fields.get("MsgId") or f"{fields.get('FromUserName')}:{fields.get('CreateTime')}"
            if fields.get("FromUserName") and not self.seen.get(key):
                self.seen.put(key, True)
                task = asyncio.ensure_future(self._reply(fields))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
            return plain("")

        return app

    async def _reply(self, fields: dict[str, str]) -> None:
        user, kind = fields["FromUserName"], fields.get("MsgType", "")
        if kind == "event":
            return
        if kind != "text":
            bubbles = [self.core.cfg.non_text_reply] if self.core.other(user, kind) == "reply" else []
        else:
            bubbles = (await self.core.answer(user, fields.get("Content", ""))).bubbles

        async def send(text: str) -> None:
            body = {"touser": user, "msgtype": "text", "agentid": self.cfg.agent_id, "text": {"content": text}}
            await self.api.post("/cgi-bin/message/send", body)
            self.core.journal.write("out", user, text, how="message/send")

        try:
            await deliver(fit(bubbles, MOST, MAX_BYTES), send, self.core.pace, self.core.guard)
        except PlatformError as error:
            self.core.journal.write("error", user, bubbles, error=str(error))


async def start(workspace: Workspace, cfg: ChannelsConfig, say: Callable[[str], None]) -> None:
    wc = cfg.wecom
    check(wc)
    core = Core(workspace, cfg, "wecom")
    await core.avatar.ready()
    api = PlatformAPI(wc.api_base, "/cgi-bin/gettoken", {"corpid": wc.corp_id, "corpsecret": wc.corp_secret})
    await api.token()  # a wrong CorpID or Secret fails here, in one line
    say(f"wecom: {core.guard.describe()}")
    say(f"wecom: callback URL http://{cfg.host}:{cfg.port}{wc.path} (put HTTPS in front of it for WeCom)")
    await listen(WeComApp(core, wc, api).app(), cfg.host, cfg.port)
