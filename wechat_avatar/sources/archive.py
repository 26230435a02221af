"""Exports handed over as archives (.zip, .tar, .tar.gz/.tgz/.tar.bz2/.tar.xz), unpacked for one ingest.

People pass exports around zipped. `ingest export.zip`, or a folder holding one, unpacks the
members a reader could use (databases, CSV, JSON, XML, archives inside) into a temporary folder
that goes when the ingest ends, and the folder is scanned as if the user had unzipped it there:

    export.zip: WeChat Files/wxid_me/Msg/Multi/MSG0.db
    -> <tmp>/0/export/WeChat Files/wxid_me/Msg/Multi/MSG0.db   (shown as export.zip/WeChat Files/…)

Readers key their rows by what is inside (account folder, shard, localId), never by the
temporary path, so the archive and its unzipped folder are the same history: neither adds
what the other stored.

Nothing in an archive is trusted. A name that would land outside the folder (`..`, an absolute
or drive path), a link or a device is refused: data is copied out of the archive, nothing is
created from its metadata. Limits, per ingest (reached: a one-line error; to go past one,
unpack the archive yourself and ingest the folder):
- MAX_BYTES: 32 GiB unpacked in all (a tar's whole stream counts: it is read through);
- MAX_ENTRIES: 500,000 entries per archive;
- MAX_RATIO: 200x compression for a member over 1 MiB (text and SQLite pages compress 3-20x;
  a zip bomb 1000x and more); a compressed tar's stream as a whole;
- MAX_DEPTH: 2 archives deep (an archive inside an archive is unpacked, one inside that is not).
An archive WeChat keeps as someone's attachment (under FileStorage/ or msg/file/) is not opened.
"""

from __future__ import annotations

import errno
import lzma
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from wechat_avatar.errors import SourceFormatError

MAX_BYTES = 32 << 30
MAX_ENTRIES = 500_000
MAX_RATIO = 200
RATIO_FROM = 1 << 20  # bytes: smaller members may compress as they like
MAX_DEPTH = 2
SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
WANTED = {".db", ".csv", ".json", ".xml"}  # what the scan reads; nothing else is unpacked
_ATTACHMENTS = re.compile(r"(^|/)(filestorage|msg/file)(/|$)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY = 1 << 20
UNPACK_YOURSELF = "unpack it yourself and ingest the folder"


def archive_kind(path: Path) -> str | None:
    """ "zip" | "tar" (perhaps compressed) | None, by content, else by name (a damaged zip still is one)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[257:262] == b"ustar":
        return "tar"
    name = path.name.lower()
    return ("zip" if name.endswith(".zip") else "tar") if name.endswith(SUFFIXES) else None


def is_attachment(path: Path) -> bool:
    """A file WeChat received in a chat (FileStorage/File/…, msg/file/…): not an export."""
    return _ATTACHMENTS.search(path.parent.as_posix()) is not None


def stem(path: Path) -> str:
    name = path.name
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem or "archive"


@dataclass
class Unpacker:
    """Unpacks archives under `root` for one ingest, within the limits, and remembers where
    each went so paths and messages can name the archive instead."""

    root: Path
    used: int = 0  # bytes unpacked so far
    folders: dict[Path, Path] = field(default_factory=dict)  # unpacked folder -> the archive

    def unpack(self, archive: Path) -> Path:
        """The folder holding `archive`'s contents, as unzipping it in place would name it."""
        depth = self._depth(archive)
        if depth >= MAX_DEPTH:
            raise SourceFormatError(f"{self.shown(archive)} is an archive inside {depth} archives "
                                    f"(the limit is {MAX_DEPTH})", hint=UNPACK_YOURSELF)  # fmt: skip
        dest = self.root / str(len(self.folders)) / stem(archive)
        dest.mkdir(parents=True)
        self.folders[dest] = archive
        try:
            if archive_kind(archive) == "zip":
                self._unzip(archive, dest)
            else:
                self._untar(archive, dest)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError) as err:
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._error(archive, f"cannot be unpacked into {self.root}: {err.strerror}",
                                  "set TMPDIR to a folder with room") from err  # fmt: skip
            raise self._error(archive, f"is a damaged or truncated archive ({err or type(err).__name__})",
                              "copy it again, or unpack it with another tool") from err  # fmt: skip
        except NotImplementedError as err:  # a compression method zipfile lacks (deflate64, zstd …)
            raise self._error(archive, f"uses a compression this reader lacks ({err})", UNPACK_YOURSELF) from err
        return dest

    def _depth(self, path: Path) -> int:
        """How many archives `path` is inside."""
        return next((1 + self._depth(arc) for folder, arc in self.folders.items() if path.is_relative_to(folder)), 0)

    def shown(self, path: Path) -> Path:
        """A path inside an unpacked folder as the user knows it: `export.zip/WeChat Files/…`."""
        for folder, archive in self.folders.items():
            if path.is_relative_to(folder):
                return self.shown(archive) / path.relative_to(folder)
        return path

    def shown_text(self, text: str) -> str:
        for folder, archive in sorted(self.folders.items(), key=lambda item: -len(str(item[0]))):
            text = text.replace(str(folder), str(self.shown(archive)))
        return text

    def _error(self, archive: Path, problem: str, hint: str = "") -> SourceFormatError:
        return SourceFormatError(f"{self.shown(archive)} {problem}", hint=hint)

    def _unzip(self, archive: Path, dest: Path) -> None:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            self._check_entries(archive, len(infos))
            todo = []
            for info in infos:
                name = _zip_name(info)
                if stat.S_IFMT(info.external_attr >> 16) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: a DOS zip
                    raise self._error(archive, f"holds a link or device entry ({name}); links are not unpacked",
                                      UNPACK_YOURSELF)  # fmt: skip
                relative = self._relative(archive, name)
                if info.is_dir() or not _wanted(relative):
                    continue
                if info.flag_bits & 0x1:
                    raise self._error(archive, f"is password-protected ({name})", UNPACK_YOURSELF)
                self._check_ratio(archive, name, info.file_size, info.compress_size)
                todo.append((info, relative))
            self._check_room(archive, sum(info.file_size for info, _ in todo))
            for info, relative in todo:
                with zf.open(info) as src:
                    self._copy(archive, src, dest, relative)

    def _untar(self, archive: Path, dest: Path) -> None:
        packed = max(archive.stat().st_size, 1)
        with tarfile.open(archive, "r:*") as tf:
            for n, member in enumerate(tf, start=1):
                self._check_entries(archive, n)
                relative = self._relative(archive, member.name)
                if not (member.isfile() or member.isdir()):
                    raise self._error(archive, f"holds a link or device entry ({member.name}); links are not "
                                      "unpacked", UNPACK_YOURSELF)  # fmt: skip
                # the whole stream is read through, wanted or not: count it before it is
                end = member.offset_data + member.size
                if end > MAX_BYTES:
                    raise self._too_big(archive)
                self._check_ratio(archive, member.name, end, packed)
                if member.isfile() and _wanted(relative):
                    self._check_room(archive, member.size)
                    src = tf.extractfile(member)
                    assert src is not None  # a regular file always has data
                    self._copy(archive, src, dest, relative)

    def _relative(self, archive: Path, name: str) -> PurePosixPath:
        """The member's path inside the folder; a name that would land outside it is refused."""
        name = name.replace("\\", "/")  # some Windows tools write backslashes
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if name.startswith("/") or _DRIVE.match(name) or ".." in parts or "\x00" in name:
            raise self._error(archive, f"holds an entry that would land outside the folder it is unpacked into "
                              f"({name!r})", "refused: it may be malicious")  # fmt: skip
        return PurePosixPath(*parts) if parts else PurePosixPath(".")

    def _check_entries(self, archive: Path, n: int) -> None:
        if n > MAX_ENTRIES:
            raise self._error(archive, f"holds more than {MAX_ENTRIES:,} entries (the limit)", UNPACK_YOURSELF)

    def _check_ratio(self, archive: Path, name: str, size: int, packed: int) -> None:
        if size > RATIO_FROM and size > MAX_RATIO * max(packed, 1):
            raise self._error(archive, f"looks like a zip bomb: {name} unpacks {size // max(packed, 1):,}x "
                              f"(the limit is {MAX_RATIO}x)", UNPACK_YOURSELF)  # fmt: skip

    def _check_room(self, archive: Path, size: int) -> None:
        if self.used + size > MAX_BYTES:
            raise self._too_big(archive)
        free = shutil.disk_usage(self.root).free
        if size > free:
            raise self._error(archive, f"needs {size:,} bytes unpacked, and {self.root} has {free:,} free",
                              "set TMPDIR to a folder with room, or " + UNPACK_YOURSELF)  # fmt: skip

    def _too_big(self, archive: Path) -> SourceFormatError:
        return self._error(archive, f"unpacks to more than {_size(MAX_BYTES)} (the limit for one ingest)",
                           UNPACK_YOURSELF)  # fmt: skip

    def _copy(self, archive: Path, src: IO[bytes], dest: Path, relative: PurePosixPath) -> None:
        """Copy one member out, counting every byte against the limit whatever its header said."""
        target = dest.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := src.read(_COPY):
                self.used += len(chunk)
                if self.used > MAX_BYTES:
                    raise self._too_big(archive)
                out.write(chunk)


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n:,} bytes"


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name; Chinese Windows tools write GBK without saying so (zipfile reads cp437)."""
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437")
    for encoding in ("utf-8", "gb18030"):  # GB 18030 reads GBK, and whatever else it adds
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _wanted(relative: PurePosixPath) -> bool:
    """A member the scan could read; macOS's __MACOSX/ and ._ resource forks are not."""
    name = relative.name
    if relative.parts[:1] == ("__MACOSX",) or name.startswith("._"):
        return False
    return name.lower().endswith(SUFFIXES) or relative.suffix.lower() in WANTED


@contextmanager
def unpacking() -> Iterator[Unpacker]:
    """An Unpacker whose folder is removed when the block ends, however it ends."""
    with tempfile.TemporaryDirectory(prefix="wechat-avatar-unpack-") as folder:
        yield Unpacker(Path(folder))
