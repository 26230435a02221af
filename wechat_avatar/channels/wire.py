"""The XML callbacks' shared wire: safe parsing, reply bodies, and the checks before any body is read.

Official Account, WeCom app and KF all push `<xml>` with CDATA fields, signed as channels/crypto.py
says; a request that fails a check is answered with a status and a JSON error, never a traceback.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from lxml import etree

from wechat_avatar.channels.crypto import EnvelopeError, MsgCrypt, SignatureError

# entities unresolved, no DTD, no network: the body comes from the internet (XXE, billion laughs)
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class Refused(Exception):
    """A callback request to answer with `status` and a one-line JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": str(self), "code": self.status}}, status_code=self.status)


def parse(body: bytes) -> dict[str, str]:
    """The <xml> element's children as tag -> text (the first of each tag)."""
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as error:
        raise Refused(400, f"the body is not well-formed XML: {error}") from None
    if root is None or root.tag != "xml":
        raise Refused(400, "the body is not an <xml> message")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            fields.setdefault(child.tag, (child.text or "").strip())
    return fields


def fresh(timestamp: str, max_skew_s: int) -> None:
    """A replayed or stale push is refused: its timestamp must be within max_skew_s of now."""
    if not timestamp.isdigit():
        raise Refused(400, "timestamp is missing or not a number")
    if abs(time.time() - int(timestamp)) > max_skew_s:
        raise Refused(403, f"stale timestamp {timestamp}: more than {max_skew_s} s from now")


NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # no XML 1.0 document may hold these


def opened(crypt: MsgCrypt, q: Mapping[str, str], encrypted: str) -> str:
    """An encrypted field (WeCom's echostr or Encrypt) after its msg_signature: forged 403, undecryptable 400."""
    try:
        return crypt.open(q.get("msg_signature") or "", q.get("timestamp") or "", q.get("nonce") or "", encrypted)
    except SignatureError as error:
        raise Refused(403, str(error)) from None
    except EnvelopeError as error:
        raise Refused(400, str(error)) from None


def cdata(text: str) -> str:
    """A CDATA section of the text, minus what XML cannot carry; `]]>` inside is split across two sections."""
    return "<![CDATA[" + NOT_XML.sub("", text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to: str, sender: str, content: str) -> str:
    return (f"<xml><ToUserName>{cdata(to)}</ToUserName><FromUserName>{cdata(sender)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(content)}</Content></xml>")  # fmt: skip


def sealed(crypt: MsgCrypt, inner: str) -> str:
    """An encrypted reply: Encrypt, MsgSignature over it, TimeStamp, Nonce."""
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
    encrypted, sig = crypt.seal(inner, timestamp, nonce)
    return (f"<xml><Encrypt>{cdata(encrypted)}</Encrypt><MsgSignature>{cdata(sig)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>")  # fmt: skip


def xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


def plain(text: str) -> Response:
    """`success` (WeChat: no retry, nothing shown) or an echoed echostr, as text."""
    return Response(text, media_type="text/plain")


async def listen(app: FastAPI, host: str, port: int) -> None:
    """Serve a callback app until stopped (Ctrl-C, SIGTERM)."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    await server.serve()
