"""Find and open the sources in the paths a user hands to `ingest`, by content, not name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from wechat_avatar import android_crypto
from wechat_avatar.config import IngestConfig
from wechat_avatar.errors import DecryptError, SourceFormatError, UsageError
from wechat_avatar.sources.android import AndroidDb
from wechat_avatar.sources.android_csv import AndroidCsv, looks_like_export
from wechat_avatar.sources.base import Source

SQLITE_MAGIC = b"SQLite format 3\x00"
PREFS_UIN_NAMES = re.compile(r"^(default_uin|_?auth_uin|last_login_uin)$")
LOOKED_FOR = (
    "an EnMicroMsg.db (encrypted or decrypted), a folder of CSV exports of its "
    "message/rcontact/userinfo tables, or shared_prefs XML with your uin"
)


@dataclass
class Found:
    databases: list[Path] = field(default_factory=list)
    csv_folders: list[Path] = field(default_factory=list)
    uins: list[str] = field(default_factory=list)


def uin_from_prefs(path: Path) -> str | None:
    """Android shared_prefs XML: <int name="default_uin" value="…"/> or <string name="…uin">…</string>."""
    try:
        root = etree.parse(str(path), etree.XMLParser(recover=True, resolve_entities=False)).getroot()
    except (OSError, etree.Error):
        return None
    if root is None:
        return None
    for node in root:
        if PREFS_UIN_NAMES.match(node.get("name") or ""):
            value = node.get("value") or (node.text or "").strip()
            if value and value.lstrip("-").isdigit() and value != "0":
                return value
    return None


def scan(paths: list[Path]) -> Found:
    found = Found()
    for path in paths:
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
        if path.is_dir():
            _scan_folder(path, found)
        elif path.suffix.lower() == ".xml":
            _add_uin(found, path)
        elif path.suffix.lower() == ".csv":
            _scan_folder(path.parent, found)
        else:
            found.databases.append(path)
    if not found.databases and not found.csv_folders:
        raise SourceFormatError(f"found no WeChat history in {', '.join(map(str, paths))}; looked for {LOOKED_FOR}")
    return found


def _scan_folder(folder: Path, found: Found) -> None:
    if looks_like_export(folder):
        found.csv_folders.append(folder)
    for prefs in [*folder.glob("*.xml"), *folder.glob("shared_prefs/*.xml")]:
        _add_uin(found, prefs)
    found.databases += sorted(p for p in folder.rglob("EnMicroMsg.db") if p.is_file())


def _add_uin(found: Found, path: Path) -> None:
    uin = uin_from_prefs(path)
    if uin and uin not in found.uins:
        found.uins.append(uin)


def candidate_keys(cfg: IngestConfig, uins: list[str]) -> list[str]:
    """Every (IMEI, uin) pair, the dummy IMEI too, as wechat-dump does; an explicit key alone."""
    if cfg.key:
        return [android_crypto.check_key(cfg.key)]
    all_uins = [u for u in [cfg.uin, *uins] if u]
    imeis = dict.fromkeys([cfg.imei, android_crypto.DEFAULT_IMEI])
    return list(dict.fromkeys(android_crypto.android_key(i, u) for u in all_uins for i in imeis))


def open_database(path: Path, keys: list[str]) -> AndroidDb:
    try:
        with path.open("rb") as f:
            head = f.read(16)
        size = path.stat().st_size
    except OSError as err:
        raise SourceFormatError(f"cannot read {path}: {err.strerror}") from err
    if size == 0:
        raise SourceFormatError(f"{path} is empty (0 bytes)", hint="copy the database again from the phone")
    if head == SQLITE_MAGIC:
        return AndroidDb.open(path, key=None)
    if size % 1024:  # SQLCipher 1 files are whole 1 KiB pages
        raise SourceFormatError(
            f"{path} is truncated or not a database ({size} bytes is not a whole number of pages)",
            hint="copy EnMicroMsg.db again, while WeChat is closed",
        )
    if not keys:
        raise UsageError(
            f"{path.name} is encrypted and no uin is known",
            hint="pass --uin (shared_prefs/system_config_prefs.xml, default_uin), the shared_prefs folder, or --key",
        )
    for key in keys:
        try:
            return AndroidDb.open(path, key)
        except DecryptError:
            continue
    raise DecryptError(
        f"cannot decrypt {path.name}: wrong IMEI/uin or key (tried {len(keys)})",
        hint="check --imei (default 1234567890ABCDEF) and --uin, pass --key, or check it is EnMicroMsg.db",
    )


def open_sources(paths: list[Path], cfg: IngestConfig) -> Iterator[Source]:
    """Yield each source opened, one at a time, so a failure names the input it came from."""
    found = scan(paths)
    keys = candidate_keys(cfg, found.uins)
    for folder in found.csv_folders:
        yield AndroidCsv(folder)
    for path in found.databases:
        yield open_database(path, keys)
