"""The platforms' JSON APIs (api.weixin.qq.com, qyapi.weixin.qq.com): an access token, cached and
refreshed, and calls whose `errcode` becomes a ChannelError."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2

from wechat_avatar.channels.core import ChannelError

STALE_TOKEN = {40001, 40014, 42001}  # invalid, malformed, expired access_token: fetch a new one and retry once
REFRESH_EARLY_S = 300  # renew this long before the platform's expires_in runs out


class PlatformAPI:
    """One account's API: `token_path` with `token_params` gives {access_token, expires_in}."""

    def __init__(self, base: str, token_path: str, token_params: dict[str, str], timeout_s: float = 10.0) -> None:
        self.client = httpx2.AsyncClient(base_url=base.rstrip("/"), timeout=timeout_s)
        self.token_path, self.token_params = token_path, token_params
        self._token, self._until = "", 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # how many tokens were fetched (a cache that works fetches one)

    async def token(self, renew: bool = False) -> str:
        async with self._lock:
            if renew or not self._token or time.monotonic() >= self._until:
                data = await self._json("GET", self.token_path, params=self.token_params)
                self._token = str(data["access_token"])
                self._until = time.monotonic() + max(60, int(data.get("expires_in", 7200)) - REFRESH_EARLY_S)
                self.fetched += 1
            return self._token

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in (0, 1):
            token = await self.token(renew=attempt == 1)
            try:
                return await self._json("POST", path, params={"access_token": token}, json=body)
            except PlatformError as error:
                if attempt or error.errcode not in STALE_TOKEN:
                    raise
        raise AssertionError("unreachable")

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = await self.client.request(method, path, **kw)
            data = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise PlatformError(-1, f"{path}: {type(error).__name__}: {error}") from None
        if not isinstance(data, dict):
            raise PlatformError(-1, f"{path}: the answer is not a JSON object")
        if data.get("errcode", 0):
            raise PlatformError(int(data["errcode"]), f"{path}: errcode {data['errcode']}: {data.get('errmsg', '')}")
        return data

    async def close(self) -> None:
        await self.client.aclose()


class PlatformError(ChannelError):
    """An API call the platform answered with a non-zero errcode (or not at all: errcode -1)."""

    def __init__(self, errcode: int, message: str) -> None:
        super().__init__(message, hint=HINTS.get(errcode, ""))
        self.errcode = errcode


HINTS = {
    40001: "check the AppSecret / Secret in avatar.yaml",
    40013: "check the AppID / CorpID in avatar.yaml",
    40125: "check the AppSecret in avatar.yaml",
    40164: "add this machine's IP to the account's IP whitelist",
    60020: "add this machine's IP to the app's trusted IPs (企业可信IP)",
}
