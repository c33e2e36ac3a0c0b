"""One row of the method → privilege table: what Milvus checks before a MilvusService call.

The rows live in the generated `privilege_table` module; this module only defines their shape,
so the generated file stays pure data and the rest of core can import the shape alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodPrivilege:
    """Milvus's `privilege_ext_obj` option of one request message (common.proto PrivilegeExt).

    `object_name_index` is the request field number holding the object name (a message field
    means its field 1, e.g. `UserEntity.name`); 0 or less means the object is `*`.
    `object_name_indexs` is a repeated field whose every name must be permitted (Flush).
    """

    object_type: str
    """`Global`, `Collection` or `User`."""
    privilege: str
    """The privilege's API name, e.g. `Search` (the metastore adds `Privilege`)."""
    object_name_index: int
    """Field number of the object name, or <= 0 for `*`."""
    object_name_indexs: int
    """Field number of a repeated list of object names, or 0."""
    request_type: str
    """The request message's full protobuf name."""
