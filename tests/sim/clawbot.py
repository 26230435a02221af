"""A loopback iLink (ClawBot) server, as the reference (section 2.1) describes it.

QR login confirmed after a few status polls; getupdates long-polls for messages the test injects,
with a cursor; sendmessage checks the headers, the token and that context_token and to_user_id echo
an inbound message, throttles sends closer than `min_gap_s` and over 10 per context_token with ret=-2,
and records every accepted send with its time. `expire()` ends the session (errcode -14).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

OWNER = "o9f3c2owner@im.wechat"


@dataclass
class FakeILink:
    min_gap_s: float = 0.0
    confirm_after: int = 2  # status polls before the scan is confirmed
    hold_s: float = 0.5  # how long getupdates holds an empty poll
    owner: str = OWNER
    msgs: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, str, str, str]] = field(default_factory=list)  # (time, to, text, context_token)
    refused: int = 0  # sends answered ret=-2
    logins: int = 0
    token: str = ""
    polls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, text: str, sender: str = OWNER, message_id: int | None = None, kind: int = 1) -> str:
        with self.lock:
            n = len(self.msgs) + 1
            item = {"type": kind, "text_item": {"text": text}} if kind == 1 else {"type": kind}
            now_ms = int(time.time() * 1000)
            self.msgs.append({"seq": n, "message_id": message_id or 1000 + n, "from_user_id": sender,
                              "to_user_id": "bot@im.bot", "client_id": f"c{n}", "create_time_ms": now_ms,
                              "message_type": 1, "message_state": 2, "item_list": [item],
                              "context_token": f"ctx-{n}"})  # fmt: skip
            return f"ctx-{n}"

    def expire(self) -> None:
        with self.lock:
            self.token = ""

    def app(self) -> FastAPI:
        app = FastAPI()
        qrs: dict[str, int] = {}
        counts: dict[str, int] = {}

        def authorised(request: Request) -> bool:
            h = request.headers
            assert h["AuthorizationType"] == "ilink_bot_token" and h["iLink-App-Id"] == "bot"
            assert base64.b64decode(h["X-WECHAT-UIN"]).decode().isdigit() and h["iLink-App-ClientVersion"] == "131072"
            return bool(self.token) and h["Authorization"] == f"Bearer {self.token}"

        @app.get("/ilink/bot/get_bot_qrcode")
        async def qrcode(bot_type: str) -> dict[str, str]:
            code = f"qr{len(qrs) + 1}"
            qrs[code] = 0
            return {"qrcode": code, "qrcode_img_content": f"https://liteapp.weixin.qq.com/q/{code}"}

        @app.get("/ilink/bot/get_qrcode_status")
        async def status(qrcode: str) -> dict[str, str]:
            qrs[qrcode] += 1
            if qrs[qrcode] <= self.confirm_after:
                return {"status": "wait" if qrs[qrcode] == 1 else "scaned"}
            self.logins += 1
            self.token = f"bot-token-{self.logins}"
            return {"status": "confirmed", "bot_token": self.token, "ilink_bot_id": "bot@im.bot",
                    "ilink_user_id": self.owner, "baseurl": "http://sim"}  # fmt: skip

        @app.post("/ilink/bot/getupdates")
        async def getupdates(request: Request) -> dict[str, Any]:
            body = await request.json()
            assert body["base_info"]["channel_version"] == "2.0.0"
            if not authorised(request):
                return {"ret": -14, "errcode": -14, "errmsg": "session timeout"}
            self.polls += 1
            start = int(body["get_updates_buf"] or 0)
            deadline = time.monotonic() + self.hold_s
            while len(self.msgs) <= start and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            with self.lock:
                new = self.msgs[start:]
                return {"ret": 0, "msgs": new, "get_updates_buf": str(start + len(new)),
                        "longpolling_timeout_ms": 35000}  # fmt: skip

        @app.post("/ilink/bot/sendmessage")
        async def sendmessage(request: Request) -> dict[str, Any]:
            if not authorised(request):
                return {"ret": -14, "errcode": -14, "errmsg": "session timeout"}
            msg = (await request.json())["msg"]
            inbound = {m["context_token"]: m for m in self.msgs}[msg["context_token"]]
            assert msg["to_user_id"] == inbound["from_user_id"] and msg["message_type"] == 2
            assert msg["message_state"] == 2 and msg["client_id"]
            now = time.monotonic()
            with self.lock:
                if (self.sent and now - self.sent[-1][0] < self.min_gap_s) or counts.get(msg["context_token"], 0) >= 10:
                    self.refused += 1
                    return {"ret": -2, "errmsg": "rate limited"}
                counts[msg["context_token"]] = counts.get(msg["context_token"], 0) + 1
                self.sent.append((now, msg["to_user_id"], msg["item_list"][0]["text_item"]["text"],
                                  msg["context_token"]))  # fmt: skip
            return {"ret": 0}

        return app
