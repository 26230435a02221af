"""Reading the export tools' text files: CSV in whatever encoding Excel left, JSON, local times.

An export re-saved on a Chinese Windows machine is often GBK, sometimes only partly (one
file appended to another): each line is decoded as UTF-8 and, where that fails, as
GB18030 (a superset of GBK), and the summary says how many lines were.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from wechat_avatar.errors import SourceFormatError
from wechat_avatar.sources.base import BadRecord

csv.field_size_limit(sys.maxsize)  # one message can be megabytes of XML
HEAD_BYTES = 65536  # enough of a JSON export to see its keys
WHOLE_FILE_BYTES = 64 << 20  # a CSV up to this size is decoded whole
BROKEN_ROW = "wrong number of CSV fields"
GBK_NOTE = "{} lines were not UTF-8 and were read as GBK"


class CsvFile:
    """One CSV export file: its header, then its rows as lists of strings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gbk_lines = 0
        try:
            with path.open("rb") as fh:
                first = fh.readline()
        except OSError as err:
            raise SourceFormatError(f"cannot read {path}: {err.strerror}") from err
        self.header = next(csv.reader([self._decode(first.removeprefix(b"\xef\xbb\xbf"))]), [])
        self.header = [name.strip() for name in self.header]

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.gbk_lines += 1
            return raw.decode("gb18030", "replace")

    def _lines(self) -> Iterator[str]:
        with self.path.open("rb") as fh:
            fh.readline()  # the header
            decode = self._decode
            for raw in fh:
                yield decode(raw)

    def _text(self) -> Iterable[str]:
        """The lines after the header: a file that is all UTF-8 (the usual case) is decoded in
        one go, which is much faster than line by line; others are decoded a line at a time."""
        if self.path.stat().st_size > WHOLE_FILE_BYTES:
            return self._lines()
        data = self.path.read_bytes()
        try:
            text = data[data.find(b"\n") + 1 if b"\n" in data else len(data) :].decode("utf-8")
        except UnicodeDecodeError:
            return self._lines()
        return io.StringIO(text, newline="\n")  # lines end at \n only, as in the file

    def rows(self, whole: bool = True) -> Iterator[list[str]]:
        """Data rows; a quoted field may span lines. Raises SourceFormatError on broken quoting.
        `whole=False` decodes a line at a time: for a look at the first rows only."""
        try:
            yield from csv.reader(self._text() if whole else self._lines())
        except csv.Error as err:
            raise SourceFormatError(f"{self.path.name} cannot be read as CSV: {err}") from err


def count_lines(path: Path) -> int:
    """Lines after the header: an estimate of the rows (a quoted newline counts twice), fast."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


def common_folder(files: Sequence[Path]) -> Path:
    """The folder an export's files share (what the summary names)."""
    return Path(os.path.commonpath([f.parent for f in files]))


def json_head(path: Path) -> str:
    """The first bytes of a JSON file as text (BOM dropped), for telling exports apart by key."""
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES).decode("utf-8-sig", "replace").lstrip()


def local_ms(text: str, tz: str) -> int:
    """A time as an export or a spreadsheet writes it -> UTC milliseconds; raises BadRecord.

    '2023-06-21 23:07:25' is local time in zone `tz`; so are the forms a spreadsheet leaves
    after a user opened and saved the file (`2024/5/3 9:05`: slashes, no zero padding, no
    seconds) and ISO `2023-06-21T23:07:25` (with a zone it is that zone's time); 10 digits are
    epoch seconds, 13 epoch milliseconds. A fraction of a second is dropped, as it always was.

    A million rows share a few thousand distinct hours, so the zone arithmetic is done once
    per hour and the rest is integer maths.
    """
    try:
        return _canonical_ms(text, tz)
    except BadRecord:
        return _other_form(text.strip(), tz)


def _canonical_ms(text: str, tz: str) -> int:
    if len(text) != 19:
        text = text.strip()
    if len(text) != 19 or text[13] != ":" or text[16] != ":":  # a cached hour must not read another form
        raise BadRecord("unreadable time", text)
    key = tz + text[:13]
    try:
        start = _HOURS[key]
    except KeyError:
        start = _HOURS[key] = _hour_ms(text, tz)
    try:
        return start + (int(text[14:16]) * 60 + int(text[17:19])) * 1000
    except ValueError:
        raise BadRecord("unreadable time", text) from None


_HOURS: dict[str, int] = {}  # zone + "YYYY-MM-DD HH" -> UTC ms at the start of that local hour
# what local_ms reads besides 'YYYY-MM-DD HH:MM:SS'; pywxdump_stage rewrites the same forms
# (without a fraction or zone) column-wise, so the two must stay one pattern
SPREADSHEET_TIME = r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})[ T]([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2}))?"
_OTHER_TIME = re.compile(rf"^{SPREADSHEET_TIME}(?:[.,][0-9]+)?(Z|[+-][0-9]{{2}}:?[0-9]{{2}})?$")
_EPOCH = re.compile(r"^[0-9]{10}(?:[0-9]{3})?$")


def _hour_ms(text: str, tz: str) -> int:
    try:
        if len(text) != 19 or text[4] != "-" or text[13] != ":" or text[16] != ":":
            raise ValueError
        start = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=ZoneInfo(tz))
    except ValueError:
        raise BadRecord("unreadable time", text) from None
    return int(start.timestamp()) * 1000


def _other_form(text: str, tz: str) -> int:
    """The forms besides the canonical one: rewritten to it where local, else read as written."""
    if _EPOCH.match(text):
        return int(text) * (1000 if len(text) == 10 else 1)
    m = _OTHER_TIME.match(text)
    if m is None:
        raise BadRecord("unreadable time", text)
    year, _, month, day, hour, minute, second, zone = m.groups()
    canonical = f"{year}-{month:0>2}-{day:0>2} {hour:0>2}:{minute:0>2}:{second or 0:0>2}"
    if zone is None:
        try:
            return _canonical_ms(canonical, tz)
        except BadRecord:
            raise BadRecord("unreadable time", text) from None
    try:  # an offset or Z: that instant, whatever --timezone says
        when = datetime.fromisoformat(canonical.replace(" ", "T") + zone.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord("unreadable time", text) from None
    return int(when.timestamp()) * 1000
