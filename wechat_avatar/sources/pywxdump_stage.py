"""PyWxDump CSV files mapped column-wise in Arrow: what `message_from_row` does a row at a time.

It maps through `pywxdump_row`, as the reader does, and imports nothing of the reader's.

Why: through the row path (`pywxdump_row.message_from_row`, `render`, `staging.message_row`,
`staging.staged`) a row costs about 12 µs of Python, ten times the csv module's own read,
which is the ingest benchmark's baseline. Here pyarrow reads the file and computes each
column for all rows at once, in C++; Python touches a row only to hash its merge key. What
depends on a few values rather than on the row is computed once per distinct value: the
UTC start of a local hour, and the payload and rendering of every non-text message
(`content_from_msg`, `render`). ADBC writes the batch into its staged image from Arrow.

Only rows the columns map exactly as the row path does are mapped here: a room, a flag of
0 or 1, a plain decimal server id that fits 64 bits, a `YYYY-MM-DD HH:MM:SS` time of a real
local hour. Any other row goes through `message_from_row` itself (and may be counted and
skipped, as there), a time a spreadsheet rewrote (`2024/5/3 9:05`) or an ISO or epoch one
too. Files of which one cannot be read as the csv module would read it (not UTF-8, a blank
line, a row of the wrong width or over 1 MiB, JSON) return None, and the ingest reads them
the row way. tests/test_pywxdump_stage.py checks that both paths stage the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from wechat_avatar.config import RenderConfig
from wechat_avatar.render import render
from wechat_avatar.sources.base import BadRecord
from wechat_avatar.sources.pywxdump_row import (
    COLUMNS,
    LABELS,
    NO_SENDER,
    SYSTEM_TYPES,
    content_from_msg,
    message_from_row,
)
from wechat_avatar.sources.textfile import CsvFile, local_ms
from wechat_avatar.staging import MESSAGE_COLUMNS, Prepared, key_of, message_row, staged_arrow

_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
_INT64_MAX = str(2**63 - 1)
# str.split()'s whitespace (tests check the list): a text without any is its own folded form
WHITESPACE = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
              *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)  # fmt: skip
_SPACE = "[" + "".join(f"\\x{{{c:x}}}" for c in WHITESPACE) + "]"
_LABELS = pa.array(list(LABELS))
_BASES = pa.array([v[0] for v in LABELS.values()], pa.int64())
_SUBS = pa.array([v[1] for v in LABELS.values()], pa.int64())
_TYPES = {"is_self": pa.int64(), "ts_ms": pa.int64(), "base_type": pa.int64(), "source_type": pa.int64(),
          "server_id": pa.int64(), "sub_type": pa.int64(), "merge_key": pa.int64()}  # fmt: skip
_SCHEMA = pa.schema([(name, _TYPES.get(name, pa.string())) for name in MESSAGE_COLUMNS.split(", ")])


def stage_files(
    paths: Sequence[Path], source: str, self_wxid: str, tz: str, cfg: RenderConfig, scratch: Path
) -> Prepared | None:
    """The files' rows mapped, rendered and staged exactly as `ingest.prepare` would (the
    image a file in `scratch`); None where the row path must read them (see the module
    docstring)."""
    parts = []
    for path in paths:
        part = _read(path)
        if part is None:
            return None
        parts.append(part)
    if not parts:
        return None
    cols = {name: pa.concat_arrays([part[name] for part in parts]) for name in COLUMNS}
    hours = _hour_starts(cols["CreateTime"], tz)
    simple = _simple(cols, hours)
    mapped = _map({k: pc.filter(v, simple) for k, v in cols.items()}, pc.filter(hours, simple), source, self_wxid, cfg)
    skipped: Counter[str] = Counter()
    if not pc.all(simple).as_py():  # the rest, the row way, back in input order
        odd = pc.invert(simple)
        rest = _map_rows({k: pc.filter(v, odd) for k, v in cols.items()}, pc.indices_nonzero(odd).to_pylist(),
                         source, self_wxid, tz, cfg, skipped)  # fmt: skip
        seq = pc.cast(pc.indices_nonzero(simple), pa.int64())
        table = pa.concat_tables([mapped.append_column("seq", seq), rest])
        mapped = table.take(pc.sort_indices(table["seq"])).drop_columns(["seq"])
    return Prepared(
        image=staged_arrow(mapped, scratch),
        ids=mapped["source_id"].to_pylist(),
        keys=mapped["merge_key"].to_pylist(),
        chats=pc.unique(mapped["chat_id"]).to_pylist(),
        skipped=skipped,
        repaired=Counter(),
        categories=_counts(mapped["category"]),
        statuses=_counts(mapped["render_status"]),
    )


def _read(path: Path) -> dict[str, pa.Array] | None:
    """COLUMNS of a CSV file as the csv module reads them, or None where pyarrow might not."""
    if path.suffix != ".csv":
        return None
    header = CsvFile(path).header
    if any(c not in header for c in COLUMNS) or len(set(header)) != len(header):
        return None
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=header, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), include_columns=COLUMNS
            ),
        )
    except pa.ArrowInvalid:  # not UTF-8, a row of the wrong width, a row longer than a block
        return None
    cols = {name: table[name].combine_chunks() for name in COLUMNS}
    blank = None  # a blank line: the csv module reads a row of no fields, pyarrow one of empty ones
    for values in cols.values():
        empty = pc.equal(values, "")
        blank = empty if blank is None else pc.and_(blank, empty)
    return None if pc.any(blank).as_py() else cols


def _hour_starts(created: pa.Array, tz: str) -> pa.Array:
    """Each row's local hour start in UTC ms; null where the time is not one of a real hour."""
    hours = pc.dictionary_encode(pc.utf8_slice_codeunits(created, 0, 13))
    starts = []
    for hour in hours.dictionary.to_pylist():
        try:
            starts.append(local_ms(f"{hour}:00:00", tz))
        except BadRecord:  # not a real time: the row way skips its rows
            starts.append(None)
    ok = pc.match_substring_regex(created, _TIME)
    return pc.if_else(ok, pc.take(pa.array(starts, pa.int64()), hours.indices), None)


def _simple(cols: dict[str, pa.Array], hours: pa.Array) -> pa.Array:
    svr = cols["MsgSvrID"]
    length = pc.binary_length(svr)
    fits = pc.or_(pc.less(length, 19), pc.and_(pc.equal(length, 19), pc.less_equal(svr, _INT64_MAX)))
    masks = [
        pc.not_equal(cols["room_name"], ""),
        pc.is_in(cols["is_sender"], value_set=pa.array(["0", "1"])),
        pc.is_valid(hours),
        pc.ascii_is_decimal(svr),  # ASCII only: str.isdigit's other digits go the row way
        fits,
    ]
    out = masks[0]
    for mask in masks[1:]:
        out = pc.and_(out, mask)
    return pc.fill_null(out, False)


def _map(c: dict[str, pa.Array], hours: pa.Array, source: str, self_wxid: str, cfg: RenderConfig) -> pa.Table:
    """message_from_row, render and message_row for simple rows, column by column."""
    n = len(hours)
    room, msg, created = c["room_name"], c["msg"], c["CreateTime"]
    at = pc.index_in(c["type_name"], value_set=_LABELS)
    base = pc.fill_null(pc.take(_BASES, at), 0)
    sub = pc.fill_null(pc.take(_SUBS, at), 0)
    server = pc.cast(c["MsgSvrID"], pa.int64())
    is_self = pc.equal(c["is_sender"], "1")
    ts = pc.add(hours, pc.multiply(pc.add(pc.multiply(_int(created, 14), 60), _int(created, 17)), 1000))
    no_talker = pc.is_in(c["talker"], value_set=pa.array(sorted(NO_SENDER)))
    sender = pc.if_else(
        pc.is_in(base, value_set=pa.array(sorted(SYSTEM_TYPES), pa.int64())),
        "",
        pc.if_else(
            is_self,
            self_wxid,
            pc.if_else(no_talker, pc.if_else(pc.ends_with(room, "@chatroom"), "", room), c["talker"]),
        ),
    )
    plain = pc.and_(
        pc.and_(pc.equal(base, 1), pc.not_equal(msg, "")), pc.less_equal(pc.binary_length(msg), cfg.max_chars)
    )
    shown = _payloads(c["type_name"], msg, base, sub, plain, cfg)
    columns = {
        "source": pa.repeat(source, n),
        "source_id": pc.if_else(
            pc.not_equal(server, 0), pc.cast(server, pa.string()), pc.binary_join_element_wise(room, c["id"], ":")
        ),
        "chat_id": room,
        "sender": sender,
        "is_self": pc.cast(is_self, pa.int64()),
        "ts_ms": ts,
        "base_type": base,
        "content": shown["content"],
        "source_type": pa.nulls(n, pa.int64()),
        "server_id": pc.if_else(pc.not_equal(server, 0), server, None),
        "text": shown["text"],
        "category": shown["category"],
        "render_status": shown["status"],
        "sub_type": shown["sub_type"],
        "quote": shown["quote"],
        "render_note": shown["note"],
        "merge_key": _merge_keys(room, sender, ts, base, shown["content"]),
    }
    return pa.table(columns, schema=_SCHEMA)


def _int(text: pa.ChunkedArray, start: int) -> pa.Array:
    return pc.cast(pc.utf8_slice_codeunits(text, start, start + 2), pa.int64())


def _payloads(
    label: pa.Array, msg: pa.Array, base: pa.Array, sub: pa.Array, plain: pa.Array, cfg: RenderConfig
) -> dict[str, pa.Array]:
    """Content and rendering (Rendered's fields) of every row. Plain text is itself; the rest
    go through the row path's content_from_msg and render, once per distinct (type, msg)."""
    n = len(msg)
    out = {"content": msg, "text": msg, "category": pa.repeat("text", n),
           "status": pa.repeat("dropped" if "text" in cfg.drop else "ok", n), "sub_type": sub,
           "quote": pa.repeat("", n), "note": pa.repeat("", n)}  # fmt: skip
    other = pc.invert(plain)
    if not pc.any(other).as_py():
        return out
    # one key per distinct (base, sub, msg), what content_from_msg and render read: the msg's
    # and the type's positions among the distinct ones, as one integer
    texts = pc.dictionary_encode(pc.filter(msg, other))
    kinds = pc.dictionary_encode(pc.add(pc.multiply(pc.filter(base, other), 1 << 32), pc.filter(sub, other)))
    width = len(kinds.dictionary)
    pair = pc.add(pc.multiply(pc.cast(texts.indices, pa.int64()), width), pc.cast(kinds.indices, pa.int64()))
    distinct = pc.dictionary_encode(pair)
    words, types = texts.dictionary.to_pylist(), kinds.dictionary.to_pylist()
    done = []
    for key in distinct.dictionary.to_pylist():
        text, kind = words[key // width], types[key % width]
        b, s = kind >> 32, kind & 0xFFFFFFFF
        content = content_from_msg(b, s, text)
        done.append((content, *render(b, s, content, cfg)))
    for field, values in zip(out, zip(*done, strict=True), strict=True):  # out's keys: content + Rendered's
        looked = pc.take(pa.array(values, out[field].type), distinct.indices)
        out[field] = pc.replace_with_mask(out[field], other, looked)
    return out


def _merge_keys(room: pa.Array, sender: pa.Array, ts: pa.Array, base: pa.Array, content: pa.Array) -> pa.Array:
    """key_of for every row: its string built in Arrow, then hashed as hash64 hashes it. Rows
    whose text key_of would fold (whitespace) are keyed by key_of itself. (Times here are whole
    seconds, so dividing by 1000 is exact: no flooring to match.)"""
    text = pc.equal(base, 1)
    exact = pc.invert(pc.and_(text, pc.match_substring_regex(content, _SPACE)))
    second = pc.cast(pc.divide(ts, 1000), pa.string())
    strings = pc.binary_join_element_wise(
        room, sender, second, pc.if_else(text, "True", "False"), pc.if_else(text, content, ""), "\x1f"
    )
    # Arrow's strings are UTF-8 already: hash their bytes, unpack all digests at once
    digests = b"".join([blake2b(data, digest_size=8).digest() for data in pc.cast(strings, pa.binary()).to_pylist()])
    keys = np.frombuffer(digests, dtype=">i8").astype(np.int64)
    if not pc.all(exact).as_py():
        for i in pc.indices_nonzero(pc.invert(exact)).to_pylist():
            keys[i] = key_of(room[i].as_py(), sender[i].as_py(), ts[i].as_py(), base[i].as_py(), content[i].as_py())
    return pa.array(keys)


def _map_rows(
    c: dict[str, pa.Array],
    seqs: list[int],
    source: str,
    self_wxid: str,
    tz: str,
    cfg: RenderConfig,
    skipped: Counter[str],
) -> pa.Table:
    """Rows the columns do not map exactly, the row way, with their input positions as `seq`."""
    kept, rows = [], []
    for seq, row in zip(seqs, zip(*(c[name].to_pylist() for name in COLUMNS), strict=True), strict=True):
        try:
            msg = message_from_row(row, source, self_wxid, tz)
        except BadRecord as bad:
            skipped[bad.reason] += 1
            continue
        kept.append(seq)
        rows.append(message_row(msg, render(msg.base_type, msg.sub_type, msg.content, cfg)))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(_SCHEMA)
    arrays = [
        pa.array(list(map(int, v)) if f.name == "is_self" else v, f.type) for f, v in zip(_SCHEMA, columns, strict=True)
    ]
    return pa.Table.from_arrays([*arrays, pa.array(kept, pa.int64())], names=[*_SCHEMA.names, "seq"])


def _counts(values: pa.Array) -> Counter[str]:
    return Counter({str(v["values"]): int(v["counts"]) for v in pc.value_counts(values).to_pylist()})
