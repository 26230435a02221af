"""Deterministic synthetic WeChat exports: the shared fixture for tests, benchmarks and demos.

    from wechat_avatar.synth import synth_android, synth_export
    result = synth_android(Path("out"), messages=5000, seed=0)
    pc = synth_export(Path("pc"), "pc3", messages=5000, seed=0)   # the same history as a PC 3.x folder

Same (messages, seed, imei, uin) -> byte-identical CSVs and identical decrypted DB rows.
"""

from wechat_avatar.android_crypto import DEFAULT_IMEI
from wechat_avatar.synth.android import DEFAULT_UIN, SynthResult, synth_android
from wechat_avatar.synth.formats import FORMATS, SynthExport, synth_export
from wechat_avatar.synth.pii import CANARIES

__all__ = [
    "CANARIES",
    "DEFAULT_IMEI",
    "DEFAULT_UIN",
    "FORMATS",
    "SynthExport",
    "SynthResult",
    "synth_android",
    "synth_export",
]
