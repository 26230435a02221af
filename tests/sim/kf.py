"""A loopback 微信客服 (WeCom KF), as the reference (section 2.3) describes it.

Customers' messages wait on the platform; `notify()` pushes the encrypted kf_msg_or_event callback
(wechatpy's enterprise crypto) with a fresh sync Token; sync_msg pages through them from a cursor
(page size `page`, has_more); send_msg enforces 5 messages per customer message within 48 h and
2048 bytes, records every accepted send, and answers errcode 95001 past the limit (our choice of
code: the reference names none).
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
from wechatpy.enterprise.crypto import WeChatCrypto

from wechat_avatar.channels.crypto import signature

KFID = "wkSimAAAAAAAAAA0001"


@dataclass
class FakeKf:
    callback: str
    token: str
    aes_key: str
    corp_id: str
    secret: str = "kf-secret"
    page: int = 2
    msgs: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, str, str]] = field(default_factory=list)
    refused: int = 0
    syncs: list[str] = field(default_factory=list)  # the cursor of each sync_msg call
    sync_token: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, user: str, text: str, ago_s: float = 0.0) -> str:
        with self.lock:
            msgid = f"msg{len(self.msgs) + 1}"
            self.msgs.append({"msgid": msgid, "open_kfid": KFID, "external_userid": user,
                              "send_time": int(time.time() - ago_s), "origin": 3, "msgtype": "text",
                              "text": {"content": text}})  # fmt: skip
            return msgid

    def notify(self, forge: bool = False) -> httpx2.Response:
        self.sync_token = f"ENC{secrets.token_hex(8)}"
        inner = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><CreateTime>{int(time.time())}"
                 "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
                 f"<Token><![CDATA[{self.sync_token}]]></Token>"
                 f"<OpenKfId><![CDATA[{KFID}]]></OpenKfId></xml>")  # fmt: skip
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        sealed = WeChatCrypto(self.token, self.aes_key, self.corp_id).encrypt_message(inner, nonce, ts)
        encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", sealed).group(1)  # type: ignore[union-attr]
        sig = "0" * 40 if forge else signature(self.token, ts, nonce, encrypted)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        return httpx2.post(self.callback, params={"msg_signature": sig, "timestamp": ts, "nonce": nonce},
                           content=body.encode(), timeout=5)  # fmt: skip

    def api(self) -> FastAPI:
        app = FastAPI()
        issued: set[str] = set()

        @app.get("/cgi-bin/gettoken")
        async def gettoken(corpid: str = "", corpsecret: str = "") -> dict[str, Any]:
            if corpid != self.corp_id or corpsecret != self.secret:
                return {"errcode": 40013 if corpid != self.corp_id else 40001, "errmsg": "invalid credential"}
            issued.add(tok := f"KF{len(issued) + 1}")
            return {"errcode": 0, "access_token": tok, "expires_in": 7200}

        @app.post("/cgi-bin/kf/sync_msg")
        async def sync_msg(request: Request, access_token: str = "") -> dict[str, Any]:
            body = await request.json()
            if access_token not in issued:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            if body["token"] != self.sync_token or body["open_kfid"] != KFID:
                return {"errcode": 95007, "errmsg": "invalid msg token"}
            self.syncs.append(body["cursor"])
            start = int(body["cursor"] or 0)
            with self.lock:
                page = self.msgs[start : start + self.page]
                more = start + len(page) < len(self.msgs)
            return {"errcode": 0, "errmsg": "ok", "next_cursor": str(start + len(page)), "has_more": int(more),
                    "msg_list": page}  # fmt: skip

        @app.post("/cgi-bin/kf/send_msg")
        async def send_msg(request: Request, access_token: str = "") -> dict[str, Any]:
            if access_token not in issued:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            body = await request.json()
            user, text = body["touser"], body["text"]["content"]
            assert body["open_kfid"] == KFID and body["msgtype"] == "text"
            with self.lock:
                last = max((m["send_time"] for m in self.msgs if m["external_userid"] == user), default=0)
                since = sum(1 for t, u, _ in self.sent if u == user and t >= last)
                if time.time() - last > 48 * 3600 or since >= 5 or len(text.encode()) > 2048:
                    self.refused += 1
                    return {"errcode": 95001, "errmsg": "send msg count limit or window closed"}
                self.sent.append((time.time(), user, text))
            return {"errcode": 0, "errmsg": "ok", "msgid": f"out{len(self.sent)}"}

        return app
