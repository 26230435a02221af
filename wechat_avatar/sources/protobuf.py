"""A schema-less protobuf wire-format reader: just enough to pull strings out of PC blobs.

bbpb (blackboxprotobuf) reads the same bytes, but at about 75 µs a message it would cost
half a minute per million PC 3.x rows; this reads a BytesExtra in a few µs. Field
numbers and wire types only, no schema:

    fields(b"\\x1a\\x08\\x08\\x01\\x12\\x04wxid")  ->  [(3, b"\\x08\\x01\\x12\\x04wxid")]
"""

from __future__ import annotations


class ProtobufError(ValueError):
    """The bytes are not a protobuf message (truncated, or a wire type that does not exist)."""


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Top-level (field number, value): varints as int, length-delimited as bytes, fixed as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 2:
            size, pos = varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            start, pos = pos, skip(buf, pos, wire)
            value = buf[start:pos]
        if pos > end or number == 0:
            raise ProtobufError("truncated message" if pos > end else "field number 0")
        out.append((number, value))
    return out


def skip(buf: bytes, pos: int, wire: int) -> int:
    """The position after a field's value, given its wire type (the key already read)."""
    if wire == 0:
        return varint(buf, pos)[1]
    if wire == 2:
        size, pos = varint(buf, pos)
        return pos + size
    if wire in (1, 5):
        return pos + (8 if wire == 1 else 4)
    raise ProtobufError(f"wire type {wire} at byte {pos}")


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
