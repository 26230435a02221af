"""Find and open the sources in the paths a user hands to `ingest`, by content, not name."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from wechat_avatar import android_crypto
from wechat_avatar.config import IngestConfig
from wechat_avatar.errors import AvatarError, DecryptError, SourceFormatError, UsageError
from wechat_avatar.sources import archive
from wechat_avatar.sources.android import AndroidDb
from wechat_avatar.sources.android_csv import AndroidCsv, looks_like_export
from wechat_avatar.sources.base import Hints, Source
from wechat_avatar.sources.chatlog import ChatlogCsv, ChatlogJson
from wechat_avatar.sources.classify import (
    PC_DATABASE,
    SQLITE_MAGIC,
    csv_kind,
    database_kind,
    json_kind,
    sqlite_tables,
    still_encrypted,
)
from wechat_avatar.sources.damage import COPY_AGAIN, ENCRYPTED, damage
from wechat_avatar.sources.memotrace import MemoTraceExport
from wechat_avatar.sources.pc3 import Pc3Db
from wechat_avatar.sources.pc4 import Pc4Db
from wechat_avatar.sources.pywxdump import PyWxDumpExport

PREFS_UIN_NAMES = re.compile(r"^(default_uin|_?auth_uin|last_login_uin)$")
LOOKED_FOR = (
    "an EnMicroMsg.db (encrypted or decrypted), a folder of CSV exports of its "
    "message/rcontact/userinfo tables, or shared_prefs XML with your uin; a decrypted PC WeChat 3.x "
    "Msg folder (MicroMsg.db, MSG0.db …) or 4.x db_storage (message_0.db …, contact.db); "
    "PyWxDump CSV/JSON, MemoTrace CSV or chatlog JSON/CSV exports; any of these in a .zip, .tar or .tar.gz"
)
_PC_KEY_FOLDERS = {"multi", "message", "contact"}  # Msg/Multi/MSG0.db, db_storage/message/message_0.db …
# what a PC database is by its name alone, for one that does not open: (version, holds messages)
_PC_ROLES = {r"MSG\d*": ("pc3", True), "MicroMsg": ("pc3", False), r"message_\d+": ("pc4", True),
             "contact": ("pc4", False)}  # fmt: skip


@dataclass
class PcFiles:
    """One PC account's decrypted databases: message shards, and the contacts database if found."""

    shards: list[Path] = field(default_factory=list)
    names: Path | None = None
    unread: dict[Path, str] = field(default_factory=dict)  # shards or the names database that do not open -> why


@dataclass
class Found:
    databases: list[Path] = field(default_factory=list)
    csv_folders: list[Path] = field(default_factory=list)
    uins: list[str] = field(default_factory=list)
    pc3: dict[Path, PcFiles] = field(default_factory=dict)  # by the folder holding the account's databases
    pc4: dict[Path, PcFiles] = field(default_factory=dict)
    exports: dict[str, list[Path]] = field(default_factory=dict)  # kind -> files
    encrypted: list[Path] = field(default_factory=list)  # PC databases nobody decrypted

    def add_export(self, kind: str, path: Path) -> None:
        files = self.exports.setdefault(kind, [])
        if path not in files:
            files.append(path)

    def empty(self) -> bool:
        pc = any(f.shards for f in [*self.pc3.values(), *self.pc4.values()])
        exports = any(k not in ("pywxdump-users", "empty") for k in self.exports)
        return not (self.databases or self.csv_folders or pc or exports)


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


def scan(paths: list[Path], unpacker: archive.Unpacker | None = None) -> Found:
    """What `paths` hold; archives are unpacked with `unpacker` (without one, they are not opened)."""
    found = Found()
    for path in paths:
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
        if path.is_dir():
            _scan_folder(path, found, unpacker)
        elif path.suffix.lower() == ".xml":
            _add_uin(found, path)
        elif path.suffix.lower() in (".csv", ".json"):
            _add_text_file(path, found, given=True)
        elif path.suffix.lower() != ".db" and archive.archive_kind(path):
            if unpacker is None:
                raise UsageError(f"{path} is an archive", hint="unpack it and ingest the folder")
            _scan_folder(unpacker.unpack(path), found, unpacker)
        else:
            _add_database(path, found, given=True)
    _check_unread(found)
    if found.empty():
        if found.encrypted:
            raise still_encrypted(found.encrypted[0])
        if "empty" in found.exports:
            raise SourceFormatError(f"{found.exports['empty'][0]} holds no messages", hint="export it again")
        raise SourceFormatError(f"found no WeChat history in {', '.join(map(str, paths))}; looked for {LOOKED_FOR}")
    if found.encrypted and not (found.pc3 or found.pc4):
        raise still_encrypted(found.encrypted[0])
    return found


def _check_unread(found: Found) -> None:
    """An account none of whose message databases opens is an error, naming the first and why;
    with one that opens, its reader names the others in the summary."""
    for groups in (found.pc3, found.pc4):
        for folder, group in groups.items():
            shards = [p for p in group.unread if (_pc_role(p) or ("", False))[1]]
            if group.shards or not group.unread or not (shards or found.empty()):
                continue  # read, or a names database alone that the account beside it names (_pc_sources)
            path = (shards or list(group.unread))[0]
            if group.unread[path] == ENCRYPTED:
                raise still_encrypted(path)
            others = f"; {len(shards) - 1} more in {folder} do not open either" if len(shards) > 1 else ""
            raise SourceFormatError(f"{path} is {group.unread[path]}{others}", hint=COPY_AGAIN)


def _scan_folder(folder: Path, found: Found, unpacker: archive.Unpacker | None) -> None:
    _scan_android_folder(folder, found)
    for inner in _scan_tree(folder, found):
        if unpacker is not None:
            _scan_folder(unpacker.unpack(inner), found, unpacker)


def _scan_android_folder(folder: Path, found: Found) -> None:
    """The phone's files: EnMicroMsg.db anywhere below, its table CSVs in this folder, shared_prefs."""
    if any(csv_kind(p) == "android" for p in folder.glob("*.csv")) and looks_like_export(folder):
        found.csv_folders.append(folder)
    for prefs in [*folder.glob("*.xml"), *folder.glob("shared_prefs/*.xml")]:
        _add_uin(found, prefs)
    found.databases += sorted(p for p in folder.rglob("EnMicroMsg.db") if p.is_file())


def _scan_tree(folder: Path, found: Found) -> list[Path]:
    """PC databases and export files anywhere below (WeChat Files holds far more than these);
    returns the archives found, but for WeChat's own received files."""
    archives = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            suffix = path.suffix.lower()
            if suffix == ".db" and name != "EnMicroMsg.db":
                _add_database(path, found, given=False)
            elif suffix in (".csv", ".json"):
                _add_text_file(path, found, given=False)
            elif name.lower().endswith(archive.SUFFIXES) and not archive.is_attachment(path.relative_to(folder)):
                archives.append(path)
    return archives


def _add_database(path: Path, found: Found, given: bool) -> None:
    """File a database by its tables; one handed over by name that we cannot place goes to Android's
    reader, which says exactly what is wrong with it."""
    pc_name = PC_DATABASE.match(path.name) is not None
    size = path.stat().st_size
    tables = sqlite_tables(path) if size else None
    kind = database_kind(tables) if tables else None
    if kind in ("pc3-msg", "pc3-names", "pc4-msg", "pc4-names"):
        group = (found.pc3 if kind.startswith("pc3") else found.pc4).setdefault(_pc_folder(path), PcFiles())
        if kind.endswith("-msg"):
            group.shards.append(path)
        else:
            group.names = path
    elif not tables and size and (role := _pc_role(path)) and (why := damage(path)):
        # a message or names database by its name that does not open: named, never silently left out
        groups = found.pc3 if role[0] == "pc3" else found.pc4
        groups.setdefault(_pc_folder(path), PcFiles()).unread[path] = why
    elif kind == "android" and not given:  # a decrypted phone database under another name
        found.databases.append(path)
    elif tables is None and pc_name and size:
        found.encrypted.append(path)
    elif given and pc_name and not size:
        raise SourceFormatError(f"{path} is empty (0 bytes)", hint="copy the database again")
    elif given and tables and kind is None:
        raise SourceFormatError(f"{path.name} is not an EnMicroMsg.db: no message, rcontact, userinfo table; "
                                "nor a PC WeChat MSG*.db / MicroMsg.db or a 4.x message_*.db / contact.db")  # fmt: skip
    elif given:
        found.databases.append(path)


def _pc_role(path: Path) -> tuple[str, bool] | None:
    stem = path.name.removeprefix("de_")
    return next((role for name, role in _PC_ROLES.items() if re.fullmatch(rf"{name}\.db", stem, re.I)), None)


def _pc_folder(path: Path) -> Path:
    return path.parent.parent if path.parent.name.lower() in _PC_KEY_FOLDERS else path.parent


def _add_text_file(path: Path, found: Found, given: bool) -> None:
    kind = csv_kind(path) if path.suffix.lower() == ".csv" else json_kind(path)
    if kind == "android":
        if given:
            _scan_android_folder(path.parent, found)
    elif kind is not None:
        found.add_export(kind, path)
        users = path.parent / "users.json"
        if kind == "pywxdump" and users.is_file():
            found.add_export("pywxdump-users", users)
    elif given:
        raise SourceFormatError(f"{path.name} is not an export I know; looked for {LOOKED_FOR}")


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


def open_sources(paths: list[Path], cfg: IngestConfig, hints: Hints | None = None) -> Iterator[Source]:
    """Yield each source opened, one at a time, so a failure names the input it came from.

    The phone first, then the PC databases, then the exports: where two hold the same
    message, the first one's copy is kept (store.SourceWriter), and the richer it is the better.
    Archives are unpacked into a folder that is removed when the generator ends (close it).
    """
    hints = hints or Hints(timezone=cfg.timezone)
    with archive.unpacking() as unpacker:
        try:
            for source in _open_found(scan(paths, unpacker), cfg, hints):
                source.path = unpacker.shown(source.path)  # the summary and `ingests` name the archive
                yield source
        except AvatarError as err:  # say export.zip/…, not the temporary folder
            if not unpacker.folders:
                raise
            raise type(err)(unpacker.shown_text(str(err)), hint=err.hint) from err


def _open_found(found: Found, cfg: IngestConfig, hints: Hints) -> Iterator[Source]:
    keys = candidate_keys(cfg, found.uins)
    for folder in found.csv_folders:
        yield AndroidCsv(folder)
    for path in found.databases:
        yield open_database(path, keys)
    yield from _pc_sources(found, hints)
    exports = found.exports
    if "pywxdump" in exports:
        yield PyWxDumpExport(exports["pywxdump"], exports.get("pywxdump-users", []), hints)
    if "memotrace" in exports:
        yield MemoTraceExport(exports["memotrace"], hints)
    if "chatlog-json" in exports:
        yield ChatlogJson(exports["chatlog-json"], hints)
    if "chatlog-csv" in exports:
        yield ChatlogCsv(exports["chatlog-csv"], hints)


def _pc_sources(found: Found, hints: Hints) -> Iterator[Source]:
    for groups, reader in ((found.pc3, Pc3Db), (found.pc4, Pc4Db)):
        named = [g.names for g in groups.values() if g.names]
        # names databases that do not open, in a folder without shards (MicroMsg.db handed over alone)
        stray = {p: why for g in groups.values() if not g.shards for p, why in g.unread.items()}
        for group in groups.values():
            if not group.shards:
                continue
            # contacts handed over from another folder belong to the only account there is
            lone = len(groups) <= 2
            names = group.names or (named[0] if len(named) == 1 and lone else None)
            unread = group.unread if names or not lone else {**stray, **group.unread}
            yield reader(group.shards, names, hints.self_wxid, unread=unread)
