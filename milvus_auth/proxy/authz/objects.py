"""Which object a request names, read from its bytes without decoding the rest.

`funcutil.GetObjectName`: the field `object_name_index` of the request; when that field is a
message (`UserEntity`, `RoleEntity`), its field 1, an empty one meaning `*`; an index <= 0 means
`*`. `GetObjectNames` reads the repeated field `object_name_indexs` (Flush). Which fields are
messages comes from the descriptors pymilvus ships. Reading walks the top-level tags and lengths
(`core.wire`): a 16 MiB Insert is neither parsed nor copied, only its name is.

Beyond Milvus, a request whose bytes are not protobuf, whose name is not UTF-8, holds a NUL or
is longer than any Milvus name could be is refused here with INVALID_ARGUMENT: such a name is
refused by Milvus's own validation later, and a check must never read it as "no name" (`*`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.core.method_privilege import MethodPrivilege
from milvus_auth.core.privileges import ANY
from milvus_auth.core.wire import (
    WireError,
    check_well_formed,
    message_field,
    nested_string_field,
    repeated_string_field,
    string_field,
)
from milvus_auth.proxy.errors import MalformedRequest

MAX_NAME_BYTES = 4096  # far above Milvus's 255-character names; bounds what a check keys on
_SELECT_GRANT = "milvus.proto.milvus.SelectGrantRequest"


def request_bytes(request: Any) -> bytes:
    """The request as bytes: forwarded calls are bytes already, local services' are messages."""
    if isinstance(request, bytes):
        return request
    return bytes(request.SerializeToString())


@dataclass(frozen=True)
class ObjectReader:
    """Reads one method's object name(s) out of its serialized request."""

    index: int
    nested: bool
    indexs: int
    select_grant: bool

    @classmethod
    def for_rule(cls, rule: MethodPrivilege) -> ObjectReader:
        """The reader for a table row, typed by pymilvus's descriptor of its request."""
        message = rule.request_type.rsplit(".", 1)[-1]
        descriptor = milvus_pb2.DESCRIPTOR.message_types_by_name.get(message)
        nested = False
        if descriptor is not None and rule.object_name_index > 0:
            field = descriptor.fields_by_number.get(rule.object_name_index)
            nested = field is not None and field.type == FieldDescriptor.TYPE_MESSAGE
        return cls(
            rule.object_name_index,
            nested,
            rule.object_name_indexs,
            rule.request_type == _SELECT_GRANT,
        )

    def name(self, data: bytes) -> str:
        """`GetObjectName`; `MalformedRequest` when the bytes or the name cannot be read."""
        if self.index <= 0:
            _read(check_well_formed, data)
            return ANY
        if self.nested:
            found = _read(nested_string_field, data, self.index)
            return _checked(found) if found else ANY
        return _checked(_read(string_field, data, self.index))

    def names(self, data: bytes) -> tuple[str, ...]:
        """`GetObjectNames` (empty when the method has no list of names)."""
        if self.indexs <= 0:
            return ()
        return tuple(_checked(name) for name in _read(repeated_string_field, data, self.indexs))

    def granted_role(self, data: bytes) -> str | None:
        """For SelectGrant: the role whose grants are asked for (`entity.role.name`)."""
        if not self.select_grant:
            return None
        entity: bytes = _read(message_field, data, 2)
        role: str = _read(nested_string_field, entity, 1)
        return role


def _read(reader: Any, *args: Any) -> Any:
    try:
        return reader(*args)
    except WireError as error:
        raise MalformedRequest(f"malformed request: {error}") from None


def _checked(name: str) -> str:
    if "\x00" in name:
        raise MalformedRequest("malformed request: an object name holds a NUL character")
    if len(name) > MAX_NAME_BYTES:
        raise MalformedRequest(
            f"malformed request: an object name is longer than {MAX_NAME_BYTES} characters"
        )
    return name
