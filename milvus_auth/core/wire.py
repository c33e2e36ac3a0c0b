"""Read one string field out of a serialized protobuf message without decoding the rest.

The privilege check needs the collection (or user) name a request names, and nothing else of
it. Decoding a 16 MiB Insert to find its collection name would cost milliseconds and a copy of
the payload; walking the top-level fields' tags and lengths costs microseconds and copies only
the name. The rules are protobuf's own, as Milvus's Go decoder applies them:

- a singular field that occurs more than once: the last occurrence wins;
- an embedded message that occurs more than once is merged, so its last inner value wins;
- a field whose wire type is not length-delimited is an unknown field, skipped;
- an absent field is the empty string (proto3's default);
- a string that is not UTF-8, a truncated field or a malformed tag is an error (`WireError`),
  as it is for Milvus's decoder: a malformed request is refused, never read as "no name".
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = range(6)
_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = (1 << 29) - 1
_FIXED_WIDTHS = {FIXED64: 8, FIXED32: 4}

Buffer = bytes | bytearray | memoryview


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (or a string is not UTF-8)."""


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = 0
    for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
        if position >= len(data):
            raise WireError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
    raise WireError("varint longer than 10 bytes")


def _fields(data: memoryview) -> Iterator[tuple[int, int, memoryview | None]]:
    """(field number, wire type, payload for length-delimited fields) of each top-level field."""
    position = 0
    end = len(data)
    while position < end:
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER:
            raise WireError(f"invalid field number {number}")
        if wire_type == VARINT:
            _, position = _varint(data, position)
            yield number, wire_type, None
            continue
        if wire_type == LENGTH_DELIMITED:
            size, position = _varint(data, position)
            if size > end - position:
                raise WireError(f"field {number} is truncated")
            yield number, wire_type, data[position : position + size]
            position += size
            continue
        width = _FIXED_WIDTHS.get(wire_type)
        if width is None:  # groups (deprecated, unused by Milvus) and the undefined 6 and 7
            raise WireError(f"unsupported wire type {wire_type} in field {number}")
        if width > end - position:
            raise WireError(f"field {number} is truncated")
        position += width
        yield number, wire_type, None


def _text(payload: memoryview) -> str:
    try:
        return str(payload, "utf-8")
    except UnicodeDecodeError as error:
        raise WireError("a string field is not valid UTF-8") from error


def _payloads(data: Buffer, number: int) -> Iterator[memoryview]:
    for found, wire_type, payload in _fields(memoryview(data)):
        if found == number and wire_type == LENGTH_DELIMITED and payload is not None:
            yield payload


def string_field(data: Buffer, number: int) -> str:
    """The string in field `number` (the last occurrence), or "" when it is absent."""
    if not isinstance(data, bytes):
        last: memoryview | None = None
        for payload in _payloads(data, number):
            last = payload
        return "" if last is None else _text(last)
    found = _last_span(data, number)
    if found is None:
        return ""
    try:
        return data[found[0] : found[1]].decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireError("a string field is not valid UTF-8") from error


def _last_span(data: bytes, number: int) -> tuple[int, int] | None:
    """Where the last length-delimited occurrence of field `number` lies in `data`.

    The same walk as `_fields`, written flat over `bytes` (indexing bytes is several times
    cheaper than a memoryview's): it runs on every checked call.
    """
    found: tuple[int, int] | None = None
    position = 0
    end = len(data)
    while position < end:
        tag, position = _bytes_varint(data, position, end)
        field, wire_type = tag >> 3, tag & 7
        if not 1 <= field <= _MAX_FIELD_NUMBER:
            raise WireError(f"invalid field number {field}")
        if wire_type == LENGTH_DELIMITED:
            size, position = _bytes_varint(data, position, end)
            if size > end - position:
                raise WireError(f"field {field} is truncated")
            if field == number:
                found = (position, position + size)
            position += size
        elif wire_type == VARINT:
            _, position = _bytes_varint(data, position, end)
        else:
            width = _FIXED_WIDTHS.get(wire_type)
            if width is None:
                raise WireError(f"unsupported wire type {wire_type} in field {field}")
            if width > end - position:
                raise WireError(f"field {field} is truncated")
            position += width
    return found


def _bytes_varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    if position < end:
        byte = data[position]
        if byte < 0x80:  # one-byte varints: nearly every tag and short length
            return byte, position + 1
    return _varint(memoryview(data), position)


def nested_string_field(data: Buffer, number: int, inner: int = 1) -> str:
    """The string in field `inner` of the message in field `number` (merged), or ""."""
    last: memoryview | None = None
    for payload in _payloads(data, number):
        for found in _payloads(payload, inner):
            last = found
    return "" if last is None else _text(last)


def message_field(data: Buffer, number: int) -> bytes:
    """The embedded message in field `number`, its occurrences merged (concatenated, as
    protobuf merges them); b"" when absent. Copies the field: for small messages only."""
    return b"".join(bytes(payload) for payload in _payloads(data, number))


def repeated_string_field(data: Buffer, number: int) -> tuple[str, ...]:
    """Every string of the repeated field `number`, in order."""
    return tuple(_text(payload) for payload in _payloads(data, number))


def check_well_formed(data: Buffer) -> None:
    """Raise `WireError` unless every top-level field's tag and length are sound."""
    for _ in _fields(memoryview(data)):
        pass
