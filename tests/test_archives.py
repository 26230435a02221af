"""Exports handed over zipped or tarred: read as their unzipped folder would be, unpacked into a
temporary folder that goes with the ingest; archives that would write outside it, bombs and
damaged archives are one clear line."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_bad_input import count, fails

from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources import archive
from wechat_avatar.sources.detect import scan


def zip_folder(folder: Path, dest: Path, encoding: str | None = None) -> Path:
    """`folder`'s files under their relative names, as a zip tool writes them; `encoding` writes
    the names in it without the UTF-8 flag, as Chinese Windows tools do."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = path.relative_to(folder).as_posix()
            info = zipfile.ZipInfo.from_file(path, name) if encoding is None else LegacyName(name, encoding)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return dest


class LegacyName(zipfile.ZipInfo):
    """A member whose name is written in a legacy code page, no UTF-8 flag."""

    def __init__(self, name: str, encoding: str) -> None:
        super().__init__(name)
        self.encoding = encoding

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's own name
        return self.filename.encode(self.encoding), self.flag_bits & ~0x800


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the CLI unpacks into (TMPDIR), to check it is left empty."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def test_zip_reads_like_its_unzipped_folder(formats: dict[str, Any], tmp_path: Path, tmpdir_env: Path) -> None:
    made = formats["pc3"]
    zipped = zip_folder(made.out, tmp_path / "pc3.zip")
    ws = tmp_path / "ws"
    result = run_cli("ingest", zipped, "--workspace", ws)
    assert result.returncode == 0, result.stderr
    where = zipped / made.path.relative_to(made.out) / "Msg" / "Multi"  # named by the archive, not the temporary copy
    assert f"pc3-db {where}: read 1500, added 1500" in " ".join(result.stdout.split()), result.stdout
    assert count(ws) == made.messages and not any(tmpdir_env.iterdir())
    again = run_cli("ingest", zipped, "--workspace", ws)
    assert again.returncode == 0 and "added 0, already stored 1500" in again.stdout, again.stdout
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(tmp_path / "unzipped")
    unzipped = run_cli("ingest", tmp_path / "unzipped", "--workspace", ws)
    assert unzipped.returncode == 0 and "added 0, already stored 1500" in unzipped.stdout, unzipped.stdout
    paths = [p for (p,) in sqlite3.connect(ws / "chat.db").execute("SELECT path FROM ingests ORDER BY rowid")]
    assert paths[0] == str(where) and count(ws) == made.messages


def test_tarballs_and_archives_in_a_folder(formats: dict[str, Any], tmp_path: Path, tmpdir_env: Path) -> None:
    inbox = tmp_path / "inbox"
    received = inbox / "WeChat Files" / "wxid_x" / "FileStorage" / "File" / "2024-05"
    received.mkdir(parents=True)
    with tarfile.open(inbox / "pc4.tar.gz", "w:gz") as tf:
        tf.add(formats["pc4"].out, arcname="backup")
    zip_folder(formats["pc3"].out, received / "someone_sent_me.zip")  # a chat attachment, not an export
    ws = tmp_path / "ws"
    result = run_cli("ingest", inbox, "--workspace", ws)
    assert result.returncode == 0, result.stderr
    assert f"pc4-db {inbox / 'pc4.tar.gz' / 'backup'}" in result.stdout and "pc3-db" not in result.stdout
    assert count(ws) == formats["pc4"].messages and not any(tmpdir_env.iterdir())
    with tarfile.open(tmp_path / "pc3.tar", "w") as tf:
        tf.add(formats["pc3"].out, arcname="pc3")
    result = run_cli("ingest", tmp_path / "pc3.tar", "--workspace", ws)  # the same history: merged, not added
    assert result.returncode == 0 and "added 0, already stored 0, merged 1500" in result.stdout, result.stdout


def test_names_in_a_legacy_code_page(formats: dict[str, Any], tmp_path: Path) -> None:
    """MemoTrace names folders after chats: a zip from a Chinese Windows tool writes them in GBK."""
    made = formats["memotrace"]
    zipped = zip_folder(made.out, tmp_path / "memo.zip", encoding="gb18030")  # GBK and what it lacks (🏸)
    with zipfile.ZipFile(zipped) as zf:
        assert any(not i.flag_bits & 0x800 and not i.filename.isascii() for i in zf.infolist())
    ws = tmp_path / "ws"
    result = run_cli("ingest", zipped, "--self", made.self_wxid, "--workspace", ws)
    assert result.returncode == 0 and "聊天记录" in result.stdout, result.stdout + result.stderr
    again = run_cli("ingest", made.path, "--self", made.self_wxid, "--workspace", ws)
    assert again.returncode == 0 and f"added 0, already stored {count(ws)}" in again.stdout, again.stdout


def zip_with(path: Path, *members: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def link(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16  # as `zip --symlinks` writes one
    return info


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def test_archives_that_would_write_outside_or_explode(tmp_path: Path, tmpdir_env: Path) -> None:
    db = b"SQLite format 3\x00" + bytes(4080)
    cases = {
        "up.zip": (zip_with(tmp_path / "up.zip", ("../../escaped.db", db)), "would land outside the folder"),
        "abs.zip": (zip_with(tmp_path / "abs.zip", (f"{tmp_path}/escaped.db", db)), "would land outside"),
        "drive.zip": (zip_with(tmp_path / "drive.zip", ("C:\\escaped.db", db)), "would land outside"),
        "link.zip": (zip_with(tmp_path / "link.zip", (link("MSG0.db", "/etc/passwd"), b"/etc/passwd")),
                     "holds a link or device entry (MSG0.db)"),
        "up.tgz": (tar_with(tmp_path / "up.tgz", (tarfile.TarInfo("a/../../escaped.db"), db)), "would land outside"),
        "link.tgz": (tar_with(tmp_path / "link.tgz", (tar_link("MSG0.db", "/etc/passwd"), b"")), "link or device"),
        "bomb.zip": (zip_with(tmp_path / "bomb.zip", ("MSG0.db", bytes(8 << 20))),
                     "looks like a zip bomb: MSG0.db unpacks"),
        "bomb.tgz": (tar_with(tmp_path / "bomb.tgz", (tarfile.TarInfo("MSG0.db"), bytes(8 << 20))),
                     f"(the limit is {archive.MAX_RATIO}x)"),
    }  # fmt: skip
    for name, (path, needle) in cases.items():
        fails(run_cli("ingest", path, "--workspace", tmp_path / "ws"), 2, f"{name} ", needle)
    assert not (tmp_path / "escaped.db").exists() and not (tmp_path.parent / "escaped.db").exists()
    assert not any(tmpdir_env.iterdir())
    assert not (tmp_path / "ws" / "chat.db").exists() or count(tmp_path / "ws") == 0


def test_damaged_archives(formats: dict[str, Any], tmp_path: Path) -> None:
    good = zip_folder(formats["pc4"].out, tmp_path / "good.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 3 : len(good) // 3 + 64] = bytes(64)  # inside a member's deflate stream
    (tmp_path / "flipped.zip").write_bytes(bytes(flipped))
    with tarfile.open(tmp_path / "good.tgz", "w:gz") as tf:
        tf.add(formats["pc4"].out, arcname="pc4")
    tgz = (tmp_path / "good.tgz").read_bytes()
    (tmp_path / "cut.tgz").write_bytes(tgz[: len(tgz) // 2])
    for name in ("cut.zip", "flipped.zip", "cut.tgz"):
        fails(run_cli("ingest", tmp_path / name, "--workspace", tmp_path / "ws"), 2,
              f"{name} is a damaged or truncated archive", "copy it again")  # fmt: skip


def test_a_compression_method_zipfile_lacks(tmp_path: Path) -> None:
    """Deflate64 (method 9, what Windows Explorer writes for big files): named, with what to do."""
    stored = zipfile.ZipInfo("chat.csv")
    stored.compress_type = zipfile.ZIP_STORED
    data = bytearray(zip_with(tmp_path / "plain.zip", (stored, b"a,b\n")).read_bytes())
    for header, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # the method in the local and central headers
        start = data.index(header)
        data[start + at : start + at + 2] = (9).to_bytes(2, "little")
    (tmp_path / "deflate64.zip").write_bytes(bytes(data))
    fails(run_cli("ingest", tmp_path / "deflate64.zip", "--workspace", tmp_path / "ws"), 2,
          "deflate64.zip uses a compression this reader lacks", archive.UNPACK_YOURSELF)  # fmt: skip


def scan_error(path: Path) -> str:
    with archive.unpacking() as unpacker, pytest.raises(SourceFormatError) as err:
        scan([path], unpacker)
    return str(err.value)


def test_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits too big to reach in a test, lowered."""
    many = zip_with(tmp_path / "many.zip", *((f"{i}.csv", b"a,b\n") for i in range(5)))
    monkeypatch.setattr(archive, "MAX_ENTRIES", 4)
    assert scan_error(many) == f"{many} holds more than 4 entries (the limit)"
    big = zip_with(tmp_path / "big.zip", ("a.csv", os.urandom(3000)), ("b.csv", os.urandom(3000)))
    monkeypatch.setattr(archive, "MAX_BYTES", 5000)
    assert scan_error(big) == f"{big} unpacks to more than 5,000 bytes (the limit for one ingest)"
    monkeypatch.undo()
    inner = zip_with(tmp_path / "inner.zip", ("x.csv", b"a,b\n"))
    middle = zip_with(tmp_path / "middle.zip", ("inner.zip", inner.read_bytes()))
    outer = zip_with(tmp_path / "outer.zip", ("middle.zip", middle.read_bytes()))
    assert scan_error(outer) == f"{outer}/middle.zip/inner.zip is an archive inside 2 archives (the limit is 2)"
    assert "found no WeChat history in" in scan_error(middle)  # one level down is unpacked (and holds nothing)


def test_errors_inside_an_archive_name_it(tmp_path: Path, tmpdir_env: Path) -> None:
    """A still-encrypted database in a zip: the line names it inside the zip, not in the
    temporary folder, and that folder is gone after the failed ingest too."""
    noise = os.urandom(3 * 4096)
    zipped = zip_with(tmp_path / "export.zip", ("WeChat Files/wxid_me/Msg/Multi/MSG0.db", noise))
    fails(run_cli("ingest", zipped, "--workspace", tmp_path / "ws"), 2,
          f"{zipped}/WeChat Files/wxid_me/Msg/Multi/MSG0.db is still encrypted", "decrypt it first")  # fmt: skip
    assert not any(tmpdir_env.iterdir())
