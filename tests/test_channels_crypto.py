"""WXBizMsgCrypt against the official known-answer vectors, and round trips with wechatpy's own code."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_avatar.channels.crypto import EnvelopeError, MsgCrypt, SignatureError, check_signature, signature
from wechat_avatar.errors import ConfigError

TOKEN, KEY, CORP = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
INBOUND = ("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXz"
           "F6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gY"
           "Nx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2S"
           "jHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En74"
           "9zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")  # fmt: skip
REPLY = ("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
         "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
         "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>")  # fmt: skip
REPLY_ENCRYPT = ("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8Gq"
                 "xlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qv"
                 "SUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQy"
                 "PR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9X"
                 "iKzHo3")  # fmt: skip

crypt = MsgCrypt(TOKEN, KEY, CORP)


def test_official_account_plain_signature_vector() -> None:
    assert signature("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    check_signature("899CF89E464EFB63F54DDAC96B0A0A235F53AA78", "486452656", "AAAAA", "1714037059")


def test_wecom_url_verification_vector() -> None:
    assert signature(TOKEN, "1411443780", "437374425", ECHO) == "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert crypt.open("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", ECHO) == \
        "5927782489442352469"  # fmt: skip


def test_inbound_decrypt_vector() -> None:
    plain = crypt.open("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", INBOUND)
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in plain
    assert re.search(r"<Content><!\[CDATA\[test\]\]></Content>\s*<MsgId>4363689963896700987</MsgId>", plain)


def test_reply_encrypt_vector_with_fixed_random() -> None:
    encrypted, sig = crypt.seal(REPLY, "1411525903", "461056294", random=b"1234567890123456")
    assert encrypted == REPLY_ENCRYPT and sig == "407518b7649e86ef23978113f92d27afa9296533"
    assert crypt.decrypt(encrypted) == REPLY


def test_forged_signature_wrong_receiver_bad_key_and_bad_padding_are_refused() -> None:
    with pytest.raises(SignatureError):
        crypt.open("0" * 40, "1411525903", "461056294", INBOUND)
    with pytest.raises(EnvelopeError, match="another AppID"):
        MsgCrypt(TOKEN, KEY, "wx_someone_else").decrypt(INBOUND)
    with pytest.raises(EnvelopeError):
        MsgCrypt(TOKEN, "a" * 43, CORP).decrypt(INBOUND)
    key = base64.b64decode(KEY + "=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    bad_pad = base64.b64encode(enc.update(b"x" * 31 + b"\x00") + enc.finalize()).decode()  # pad byte 0
    with pytest.raises(EnvelopeError, match="padding"):
        crypt.decrypt(bad_pad)
    with pytest.raises(EnvelopeError, match="base64"):
        crypt.decrypt("not base64 !")
    with pytest.raises(ConfigError, match="43 letters"):
        MsgCrypt(TOKEN, "short", CORP)


@pytest.mark.parametrize("message", ["", "你好<s>在吗", "x" * 31, "y" * 32, "z" * 1000])
def test_round_trip_with_wechatpy_both_ways(message: str) -> None:
    """wechatpy (an independent implementation, MIT) opens what we seal, and we open what it seals."""
    from wechatpy.crypto import WeChatCrypto

    theirs = WeChatCrypto(TOKEN, KEY, CORP)
    xml = theirs.encrypt_message(message, "461056294", "1411525903")
    encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", xml).group(1)  # type: ignore[union-attr]
    sig = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", xml).group(1)  # type: ignore[union-attr]
    assert crypt.open(sig, "1411525903", "461056294", encrypted) == message
    ours, our_sig = crypt.seal(message, "1411525903", "461056294")
    pushed = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{ours}]]></Encrypt></xml>"
    assert theirs.decrypt_message(pushed, our_sig, "1411525903", "461056294") == message
