"""Official Account (公众号) server callback: followers chat with the avatar.

    GET  PATH?signature&timestamp&nonce&echostr          URL check: echo echostr
    POST PATH?signature&timestamp&nonce&openid[&encrypt_type=aes&msg_signature]
         <xml>…<MsgType>text</MsgType><Content>…</Content><MsgId>…</MsgId></xml>   (plain, compat or safe)

WeChat waits 5 s for the passive reply, then tries again with the same MsgId (3 tries). The first try
starts the model; a retry finds that turn and waits on it, so a message is answered by one model call.
Without the customer-service API the bubbles are joined into the one passive reply, and a try that
misses the window is held open so that WeChat's next try gets the answer. With it, the passive reply
is the first bubble and the rest follow, paced, through message/custom/send (also all of them when
the window is missed: the try answers `success` and the reply follows when ready).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import QueryParams

from wechat_avatar.channels.api import PlatformAPI, PlatformError
from wechat_avatar.channels.core import Core, deliver, fit
from wechat_avatar.channels.crypto import EnvelopeError, MsgCrypt, SignatureError, check_signature
from wechat_avatar.channels.wire import Refused, fresh, listen, parse, plain, sealed, text_reply, xml
from wechat_avatar.config import ChannelsConfig, OfficialAccountConfig
from wechat_avatar.errors import ConfigError
from wechat_avatar.workspace import Workspace

MAX_BYTES = 2048  # a text message's practical limit (UTF-8)
CUSTOMER_SERVICE_MOST = 5  # messages per user message (48 h) through message/custom/send
TRIES = 3  # WeChat's tries of one push
TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
APP_ID = re.compile(r"wx[0-9A-Za-z]{16}")


def check(cfg: OfficialAccountConfig) -> None:
    """Refuse a bad token, AppID or key before listening."""
    where = "channels.official_account"
    if not TOKEN.fullmatch(cfg.token):
        raise ConfigError(f"{where}.token must be 3-32 letters and digits (the platform's Token)",
                          hint="copy it from 开发 → 基本配置 → 服务器配置")  # fmt: skip
    if (cfg.encoding_aes_key or cfg.customer_service) and not APP_ID.fullmatch(cfg.app_id):
        raise ConfigError(f"{where}.app_id must be the account's AppID (wx and 16 letters or digits), "
                          f"got {cfg.app_id!r}", hint="copy it from 开发 → 基本配置")  # fmt: skip
    if cfg.encoding_aes_key:
        MsgCrypt(cfg.token, cfg.encoding_aes_key, cfg.app_id)  # raises on a bad key
    if cfg.customer_service and not cfg.app_secret:
        raise ConfigError(f"{where}.customer_service needs app_secret (the access token)")


def api_of(cfg: OfficialAccountConfig) -> PlatformAPI:
    params = {"grant_type": "client_credential", "appid": cfg.app_id, "secret": cfg.app_secret}
    return PlatformAPI(cfg.api_base, "/cgi-bin/token", params)


@dataclass
class Turn:
    """One inbound message across WeChat's tries."""

    task: asyncio.Future[list[str]]
    tries: int = 0
    followed: bool = False  # the customer-service sends for it have been started


@dataclass
class OfficialAccount:
    core: Core
    cfg: OfficialAccountConfig
    api: PlatformAPI | None  # the customer-service API, when the account may use it
    crypt: MsgCrypt | None = None
    turns: dict[str, Turn] = field(default_factory=dict)
    background: set[asyncio.Future[object]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.cfg.encoding_aes_key:
            self.crypt = MsgCrypt(self.cfg.token, self.cfg.encoding_aes_key, self.cfg.app_id)

    def app(self) -> FastAPI:
        app = FastAPI(title="wechat-avatar official account", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get(self.cfg.path)
        async def verify(request: Request) -> Response:
            q = request.query_params
            try:
                check_signature(q.get("signature", ""), self.cfg.token, q.get("timestamp", ""), q.get("nonce", ""))
            except SignatureError as error:
                return Refused(403, str(error)).response()
            return plain(q.get("echostr", ""))

        @app.post(self.cfg.path)
        async def push(request: Request) -> Response:
            try:
                fields, aes = self._open(request.query_params, await request.body())
                content = await self._answer(fields)
            except Refused as refused:
                return refused.response()
            if content is None:
                return plain("success")
            body = text_reply(fields["FromUserName"], fields.get("ToUserName", ""), content)
            return xml(sealed(self.crypt, body) if aes and self.crypt else body)

        return app

    def _open(self, q: QueryParams, body: bytes) -> tuple[dict[str, str], bool]:
        """The push's fields, after its signature, its freshness and (safe mode) its envelope are checked."""

        def get(name: str) -> str:
            return q.get(name) or ""

        timestamp, nonce = get("timestamp"), get("nonce")
        try:
            check_signature(get("signature"), self.cfg.token, timestamp, nonce)
        except SignatureError as error:
            raise Refused(403, str(error)) from None
        fresh(timestamp, self.core.cfg.max_skew_s)
        fields = parse(body)
        aes = get("encrypt_type") == "aes"
        if aes:
            if self.crypt is None or "Encrypt" not in fields:
                raise Refused(400, "an encrypted push, but no EncodingAESKey is set or no Encrypt field came")
            try:
                fields = parse(self.crypt.open(get("msg_signature"), timestamp, nonce, fields["Encrypt"]).encode())
            except SignatureError as error:
                raise Refused(403, f"msg_signature: {error}") from None
            except EnvelopeError as error:
                raise Refused(400, str(error)) from None
        if not fields.get("FromUserName") or not fields.get("MsgType"):
            raise Refused(400, "the message has no FromUserName or MsgType")
        return fields, aes

    async def _answer(self, fields: dict[str, str]) -> str | None:
        """The passive reply's text, or None for `success`."""
        user = fields["FromUserName"]
        key = fields.get("MsgId") or f"{user}:{fields.get('CreateTime', '')}"  # events have no MsgId
        turn = self.turns.get(key)
        if turn is None:
            turn = self.turns[key] = Turn(asyncio.ensure_future(self._bubbles(fields)))
            if len(self.turns) > 10_000:
                del self.turns[next(iter(self.turns))]
        turn.tries += 1
        try:
            bubbles = await asyncio.wait_for(asyncio.shield(turn.task), self.cfg.reply_window_s)
        except TimeoutError:
            if self.api is not None:  # it follows through customer service; no retry wanted
                self._follow(turn, user, 0)
                return None
            if turn.tries >= TRIES:
                self.core.journal.write("late", user, self.cfg.busy_reply, msg=key)
                return self.cfg.busy_reply
            bubbles = await asyncio.shield(turn.task)  # held: WeChat's next try gets the answer
        if not bubbles:
            return None
        if self.api is None:
            content = fit(["\n".join(bubbles)], 1, MAX_BYTES)[0]
        else:
            content = bubbles[0]
            self._follow(turn, user, 1)
        self.core.journal.write("out", user, content, msg=key, attempt=turn.tries, how="passive")
        return content

    async def _bubbles(self, fields: dict[str, str]) -> list[str]:
        user, kind = fields["FromUserName"], fields["MsgType"]
        if kind == "event":
            self.core.other(user, f"event:{fields.get('Event', '')}")
            return []
        if kind != "text":
            return [self.core.cfg.non_text_reply] if self.core.other(user, kind) == "reply" else []
        answer = await self.core.answer(user, fields.get("Content", ""))
        return fit(answer.bubbles, 100)

    def _follow(self, turn: Turn, user: str, start: int) -> None:
        """Send bubbles[start:] through customer service, once per turn, when the turn is done."""
        if turn.followed or self.api is None:
            return
        turn.followed = True
        task = asyncio.ensure_future(self._customer_service(turn, user, start))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _customer_service(self, turn: Turn, user: str, start: int) -> None:
        assert self.api is not None
        bubbles = fit((await turn.task)[start:], CUSTOMER_SERVICE_MOST - start, MAX_BYTES)
        api = self.api

        async def send(text: str) -> None:
            body = {"touser": user, "msgtype": "text", "text": {"content": text}}
            await api.post("/cgi-bin/message/custom/send", body)
            self.core.journal.write("out", user, text, how="customer_service")

        try:
            await deliver(bubbles, send, self.core.pace, self.core.guard, pause_first=start > 0)
        except PlatformError as error:
            self.core.journal.write("error", user, bubbles, error=str(error))


async def start(workspace: Workspace, cfg: ChannelsConfig, say: Callable[[str], None]) -> None:
    """Check the settings, serve and (customer service) the AppSecret, then listen for WeChat's pushes."""
    oa = cfg.official_account
    check(oa)
    core = Core(workspace, cfg, "official-account")
    await core.avatar.ready()
    api = api_of(oa) if oa.customer_service else None
    if api is not None:
        await api.token()  # a wrong AppID or AppSecret fails here, in one line
    mode = "safe/compatibility (AES)" if oa.encoding_aes_key else "plain"
    say(f"official-account: {core.guard.describe()}")
    say(f"official-account: {mode} mode, customer service {'on' if api else 'off'}; callback URL "
        f"http://{cfg.host}:{cfg.port}{oa.path} (put HTTPS on port 443 in front of it for WeChat)")  # fmt: skip
    await listen(OfficialAccount(core, oa, api).app(), cfg.host, cfg.port)
