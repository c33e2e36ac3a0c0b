"""Custom privilege groups as Milvus stores them: a protobuf `milvuspb.PrivilegeGroupInfo`.

`PrivilegeGroupInfo{group_name = 1; repeated PrivilegeEntity privileges = 2}` and
`PrivilegeEntity{name = 1}` are small enough to encode by hand, which keeps protobuf and pymilvus
out of core; the bytes equal Go's `proto.Marshal` (fields in number order, empty ones omitted).
Decoding skips fields it does not know, as protobuf does.
"""

from __future__ import annotations

from dataclasses import dataclass

from milvus_auth.core.errors import MalformedRecord

_LENGTH_DELIMITED = 2
_WIRE_SIZES = {1: 8, 5: 4}  # fixed64, fixed32


@dataclass(frozen=True)
class PrivilegeGroup:
    """A custom group: its name and member privileges (API names), in stored order."""

    name: str
    privileges: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The value Milvus's `SavePrivilegeGroup` writes."""
        out = bytearray()
        if self.name:
            _field(out, 1, self.name.encode())
        for privilege in self.privileges:
            entity = bytearray()
            if privilege:
                _field(entity, 1, privilege.encode())
            _field(out, 2, bytes(entity))
        return bytes(out)

    @classmethod
    def decode(cls, key: str, raw: bytes) -> PrivilegeGroup:
        """Parse a stored value; `MalformedRecord` names the key when it is not one."""
        try:
            fields = _fields(raw)
            name = ""
            privileges: list[str] = []
            for number, value in fields:
                if number == 1:
                    name = value.decode()
                elif number == 2:
                    entity = dict(_fields(value))
                    privileges.append(entity.get(1, b"").decode())
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedRecord(key) from error
        return cls(name, tuple(privileges))


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _field(out: bytearray, number: int, data: bytes) -> None:
    _varint(out, number << 3 | _LENGTH_DELIMITED)
    _varint(out, len(data))
    out += data


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(raw) or shift > 63:
            raise ValueError("truncated varint")
        byte = raw[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(raw: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a message; other wire types are skipped."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at < len(raw):
        tag, at = _read_varint(raw, at)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == _LENGTH_DELIMITED:
            size, at = _read_varint(raw, at)
            if at + size > len(raw):
                raise ValueError("truncated field")
            found.append((number, raw[at : at + size]))
            at += size
        elif wire == 0:
            _, at = _read_varint(raw, at)
        elif wire in _WIRE_SIZES:
            at += _WIRE_SIZES[wire]
            if at > len(raw):
                raise ValueError("truncated field")
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return found
