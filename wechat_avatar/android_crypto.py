"""Android EnMicroMsg.db encryption: the key derivation and SQLCipher-1 settings.

Shared by the Android reader and the synthetic-export writer, so both speak exactly
the cipher WeChat for Android uses (see reference/wechat-formats.md §1.2).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import sqlcipher3

from wechat_avatar.errors import DecryptError, SourceFormatError, UsageError

DEFAULT_IMEI = "1234567890ABCDEF"

# SQLCipher 1: AES-256-CBC, PBKDF2-HMAC-SHA1 with 4000 iterations, 1 KiB pages, no HMAC.
# Set explicitly rather than via cipher_compatibility so any SQLCipher 4.x build agrees.
SQLCIPHER1_PRAGMAS = (
    "PRAGMA cipher_use_hmac = OFF",
    "PRAGMA kdf_iter = 4000",
    "PRAGMA cipher_page_size = 1024",
    "PRAGMA cipher_hmac_algorithm = HMAC_SHA1",
    "PRAGMA cipher_kdf_algorithm = PBKDF2_HMAC_SHA1",
)

_KEY_RE = re.compile(r"^[0-9a-f]{7}$")


def android_key(imei: str, uin: str | int) -> str:
    """key = first 7 hex chars of md5(IMEI + uin), used as a passphrase."""
    return hashlib.md5(f"{imei}{uin}".encode()).hexdigest()[:7]


def check_key(key: str) -> str:
    key = key.strip().lower()
    if not _KEY_RE.match(key):
        raise UsageError(
            f"--key must be 7 hex characters (first 7 of md5(IMEI+uin)), got {key!r}",
            hint="or pass --imei and --uin and let wechat-avatar derive it",
        )
    return key


def connect(path: Path, key: str) -> sqlcipher3.Connection:
    """Open (or create) an EnMicroMsg-style database with the Android cipher settings."""
    conn = sqlcipher3.connect(str(path), check_same_thread=False)  # ingest reads from a prefetch thread
    conn.execute(f"PRAGMA key = '{check_key(key)}'")
    for pragma in SQLCIPHER1_PRAGMAS:
        conn.execute(pragma)
    return conn


def open_encrypted(path: Path, key: str) -> sqlcipher3.Connection:
    """Open an existing encrypted database read-only, proving the key works first."""
    conn = connect(path, key)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as err:
        conn.close()
        if "malformed" in str(err):  # the key worked on page 1, but pages are missing
            raise SourceFormatError(
                f"{path.name} is damaged or truncated: {err}", hint="copy EnMicroMsg.db again, while WeChat is closed"
            ) from err
        raise DecryptError(
            f"cannot decrypt {path.name}: wrong IMEI/uin or key",
            hint="pass your phone's --imei (default 1234567890ABCDEF) and --uin, or --key",
        ) from err
    conn.execute("PRAGMA query_only = ON")
    return conn
