"""A loopback WeCom: encrypted URL check and pushes (wechatpy's enterprise crypto, independent of ours),
gettoken and message/send recording each message with its time (reference section 2.3)."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
from fastapi import FastAPI, Request
from wechatpy.enterprise.crypto import WeChatCrypto

from wechat_avatar.channels.crypto import signature


@dataclass
class FakeWeCom:
    callback: str
    token: str
    aes_key: str
    corp_id: str
    secret: str = "corp-secret"
    agent_id: int = 1000002
    sent: list[tuple[float, str, str]] = field(default_factory=list)
    tokens_issued: int = 0
    issued: set[str] = field(default_factory=set)

    def crypto(self) -> WeChatCrypto:
        return WeChatCrypto(self.token, self.aes_key, self.corp_id)

    def verify(self, forge: bool = False) -> httpx2.Response:
        plain = str(secrets.randbelow(10**18))
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        sealed = self.crypto().encrypt_message(plain, nonce, ts)
        echostr = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed).group(1)  # type: ignore[union-attr]
        sig = "0" * 40 if forge else signature(self.token, ts, nonce, echostr)
        response = httpx2.get(self.callback, params={"msg_signature": sig, "timestamp": ts, "nonce": nonce,
                                                     "echostr": echostr}, timeout=10)  # fmt: skip
        if response.status_code == 200:
            assert response.text == plain  # decrypted, no quotes or newline
        return response

    def push(self, user: str, content: str, msg_id: str | None = None, forge: bool = False,
             timestamp: str | None = None) -> httpx2.Response:  # fmt: skip
        inner = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><FromUserName><![CDATA[{user}]]>"
                 f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or secrets.randbelow(10**18)}</MsgId>"
                 f"<AgentID>{self.agent_id}</AgentID></xml>")  # fmt: skip
        ts, nonce = timestamp or str(int(time.time())), str(secrets.randbelow(10**9))
        sealed = self.crypto().encrypt_message(inner, nonce, ts)
        encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed).group(1)  # type: ignore[union-attr]
        sig = "0" * 40 if forge else signature(self.token, ts, nonce, encrypted)
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><AgentID>{self.agent_id}</AgentID>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")  # fmt: skip
        return httpx2.post(self.callback, params={"msg_signature": sig, "timestamp": ts, "nonce": nonce},
                           content=body.encode(), timeout=5)  # fmt: skip

    def revoke(self) -> None:
        """Every token issued so far stops working (WeCom renewed them): the next send gets 40014."""
        self.issued.clear()

    def api(self) -> FastAPI:
        app = FastAPI()
        issued = self.issued

        @app.get("/cgi-bin/gettoken")
        async def gettoken(corpid: str = "", corpsecret: str = "") -> dict[str, Any]:
            if corpid != self.corp_id:
                return {"errcode": 40013, "errmsg": "invalid corpid"}
            if corpsecret != self.secret:
                return {"errcode": 40001, "errmsg": "invalid secret"}
            self.tokens_issued += 1
            issued.add(tok := f"WC{self.tokens_issued}")
            return {"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200}

        @app.post("/cgi-bin/message/send")
        async def send(request: Request, access_token: str = "") -> dict[str, Any]:
            if access_token not in issued:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            body = await request.json()
            assert body["msgtype"] == "text" and body["agentid"] == self.agent_id
            assert len(body["text"]["content"].encode()) <= 2048
            self.sent.append((time.monotonic(), body["touser"], body["text"]["content"]))
            return {"errcode": 0, "errmsg": "ok", "invaliduser": ""}

        return app
