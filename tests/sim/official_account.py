"""A loopback WeChat Official Account platform, as the reference (section 2.2) describes it.

The push side signs and (compat / safe mode) encrypts a follower's message with wechatpy's crypto (an
implementation independent of ours), POSTs it to the callback, gives up after `timeout_s` and tries
again with the same MsgId, 3 tries in all, and checks the reply it accepts: XML, ToUserName, and in
AES mode the MsgSignature and envelope. The API side is api.weixin.qq.com's token and
message/custom/send, with the 5-messages-per-user-message quota; every send is recorded with its time.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
from fastapi import FastAPI, Request
from lxml import etree
from wechatpy.crypto import WeChatCrypto

from wechat_avatar.channels.crypto import signature

GH = "gh_sim0000001"


@dataclass
class Push:
    tries: list[str] = field(default_factory=list)  # per try: "timeout" or the HTTP status
    status: int = 0  # of the accepted try
    body: str = ""
    reply: str | None = None  # the passive reply's text; None for "success" / empty
    accepted_at: float = 0.0  # time.monotonic() of the accepted answer


@dataclass
class FakeMP:
    callback: str  # http://127.0.0.1:PORT/wechat
    token: str
    app_id: str
    aes_key: str = ""
    secret: str = "sim-secret"
    timeout_s: float = 5.0
    tries: int = 3
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, openid, text)
    tokens_issued: int = 0
    quota: dict[str, int] = field(default_factory=dict)  # openid -> sends left since their last message
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- the push side --------------------------------------------------------------------------------------

    def query(self, timestamp: str | None = None, forge: bool = False) -> dict[str, str]:
        ts, nonce = timestamp or str(int(time.time())), str(secrets.randbelow(10**9))
        sig = "0" * 40 if forge else signature(self.token, ts, nonce)
        return {"signature": sig, "timestamp": ts, "nonce": nonce}

    def verify(self, forge: bool = False) -> httpx2.Response:
        echostr = str(secrets.randbelow(10**18))
        response = httpx2.get(self.callback, params={**self.query(forge=forge), "echostr": echostr}, timeout=10)
        if response.status_code == 200:
            assert response.text == echostr
        return response

    def xml(self, openid: str, content: str | None, msg_type: str, msg_id: str) -> str:
        body = f"<ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        body += f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        if msg_type == "text":
            body += f"<Content><![CDATA[{content}]]></Content>"
        elif msg_type == "image":
            body += "<PicUrl><![CDATA[http://127.0.0.1/x.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"
        return f"<xml>{body}<MsgId>{msg_id}</MsgId></xml>"

    def push(self, openid: str, content: str | None = "在吗", msg_type: str = "text", mode: str = "plain",
             msg_id: str | None = None, timestamp: str | None = None, forge: str = "",
             raw: bytes | None = None) -> Push:  # fmt: skip
        """One message, tried up to `tries` times with the same MsgId while the callback is too slow.

        forge: "signature" (the query's) or "msg_signature" (safe mode's)."""
        msg_id = msg_id or str(secrets.randbelow(10**18))
        plain = self.xml(openid, content, msg_type, msg_id)
        query = self.query(timestamp, forge == "signature")
        body = raw if raw is not None else plain.encode()
        crypto = WeChatCrypto(self.token, self.aes_key, self.app_id) if mode != "plain" else None
        if crypto is not None and raw is None:
            sealed = crypto.encrypt_message(plain, query["nonce"], query["timestamp"])
            encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed).group(1)  # type: ignore[union-attr]
            sig = "0" * 40 if forge == "msg_signature" else signature(self.token, query["timestamp"],
                                                                      query["nonce"], encrypted)  # fmt: skip
            query |= {"encrypt_type": "aes", "msg_signature": sig}
            outer = plain[5:-6] if mode == "compat" else f"<ToUserName><![CDATA[{GH}]]></ToUserName>"
            body = f"<xml>{outer}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
        with self.lock:
            self.quota[openid] = 5  # a user message opens 5 customer-service sends (48 h)
        result = Push()
        for _ in range(self.tries):
            try:
                response = httpx2.post(self.callback, params={**query, "openid": openid}, content=body,
                                       timeout=self.timeout_s)  # fmt: skip
            except httpx2.TimeoutException:
                result.tries.append("timeout")
                continue
            result.tries.append(str(response.status_code))
            result.status, result.body, result.accepted_at = response.status_code, response.text, time.monotonic()
            if response.status_code == 200:
                result.reply = self.check_reply(response.text, openid, crypto)
            return result
        return result

    def check_reply(self, text: str, openid: str, crypto: WeChatCrypto | None) -> str | None:
        """What the follower sees; an invalid reply fails here as WeChat would refuse it."""
        if text in ("", "success"):
            return None
        if crypto is not None:
            root = etree.fromstring(text.encode())
            text = crypto.decrypt_message(text, root.findtext("MsgSignature"), root.findtext("TimeStamp"),
                                          root.findtext("Nonce"))  # fmt: skip
        root = etree.fromstring(text.encode())
        assert root.findtext("ToUserName") == openid and root.findtext("FromUserName") == GH
        assert root.findtext("MsgType") == "text" and root.findtext("CreateTime", "").isdigit()
        content = root.findtext("Content") or ""
        assert len(content.encode()) <= 2048
        return content

    # --- api.weixin.qq.com ----------------------------------------------------------------------------------

    def api(self) -> FastAPI:
        app = FastAPI()
        issued: set[str] = set()

        @app.get("/cgi-bin/token")
        async def token(grant_type: str = "", appid: str = "", secret: str = "") -> dict[str, Any]:
            if appid != self.app_id:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if secret != self.secret or grant_type != "client_credential":
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            self.tokens_issued += 1
            issued.add(tok := f"TOKEN{self.tokens_issued}")
            return {"access_token": tok, "expires_in": 7200}

        @app.post("/cgi-bin/message/custom/send")
        async def custom_send(request: Request, access_token: str = "") -> dict[str, Any]:
            if access_token not in issued:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
            body = await request.json()
            user, content = body["touser"], body["text"]["content"]
            assert body["msgtype"] == "text" and len(content.encode()) <= 2048
            with self.lock:
                if self.quota.get(user, 0) <= 0:
                    return {"errcode": 45047, "errmsg": "out of response count limit"}
                self.quota[user] -= 1
                self.sent.append((time.monotonic(), user, content))
            return {"errcode": 0, "errmsg": "ok"}

        return app
