"""WXBizMsgCrypt: the signatures and AES envelope shared by Official Account safe mode, WeCom and KF.

    signature      sha1 of the sorted, concatenated [token, timestamp, nonce(, Encrypt)], lowercase hex
    AESKey         base64decode(EncodingAESKey + "=") -> 32 bytes; IV = AESKey[:16]
    plaintext      random(16) || len(msg) as 4 bytes big-endian || msg (UTF-8) || receive_id
                   padded PKCS#7 to 32-byte blocks (not AES's 16), AES-256-CBC, base64

receive_id is the AppID (Official Account) or the CorpID (WeCom app, KF). AES itself is the
`cryptography` package's; only WeChat's framing, which no library exposes, is written here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_avatar.errors import AvatarError, ConfigError

BLOCK = 32  # WeChat pads to 32 bytes, twice AES's block
AES_KEY = re.compile(r"[A-Za-z0-9]{43}")


class SignatureError(AvatarError):
    """A callback's signature does not match: forged, or signed with another token (HTTP 403)."""


class EnvelopeError(AvatarError):
    """An encrypted body that does not decrypt to WeChat's framing, or is for another AppID/CorpID."""


def signature(*parts: str) -> str:
    """sha1 hex of the parts sorted and joined: the URL check's (token, timestamp, nonce) or a
    message's (token, timestamp, nonce, Encrypt)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(given: str, *parts: str) -> None:
    # constant-time: how long a wrong guess takes says nothing about how much of it was right
    if not hmac.compare_digest(given.strip().lower().encode(), signature(*parts).encode()):
        raise SignatureError("the request's signature does not match this token")


def aes_key(encoding_aes_key: str) -> bytes:
    if not AES_KEY.fullmatch(encoding_aes_key or ""):
        raise ConfigError(f"EncodingAESKey must be 43 letters and digits, got {len(encoding_aes_key or '')} "
                          "characters", hint="copy it from the platform's message-push settings")  # fmt: skip
    return base64.b64decode(encoding_aes_key + "=")


class MsgCrypt:
    """One account's token, key and receive_id: sign, encrypt and decrypt its messages."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token, self.key, self.receive_id = token, aes_key(encoding_aes_key), receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, message: str, random: bytes | None = None) -> str:
        body = message.encode()
        plain = (random or os.urandom(16)) + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("the Encrypt field is not base64") from None
        if not raw or len(raw) % 16:
            raise EnvelopeError(f"the Encrypt field is {len(raw)} bytes, not whole AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise EnvelopeError("the decrypted body has bad padding: wrong EncodingAESKey?")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise EnvelopeError("the decrypted body is too short for WeChat's framing")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length:
            raise EnvelopeError("the decrypted body is shorter than its stated length: wrong EncodingAESKey?")
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise EnvelopeError("the message is for another AppID/CorpID than this one")
        try:
            return message.decode()
        except UnicodeDecodeError:
            raise EnvelopeError("the decrypted message is not UTF-8: wrong EncodingAESKey?") from None

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """Check the msg_signature over the Encrypt field, then decrypt it."""
        check_signature(msg_signature, self.token, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def seal(self, message: str, timestamp: str, nonce: str, random: bytes | None = None) -> tuple[str, str]:
        """(Encrypt, MsgSignature) of a reply."""
        encrypted = self.encrypt(message, random)
        return encrypted, signature(self.token, timestamp, nonce, encrypted)
