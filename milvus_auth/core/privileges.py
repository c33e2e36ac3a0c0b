"""Milvus's privileges: names, object types, built-in groups and levels, and grant validation.

Everything here follows milvus-io/milvus `pkg/util/constant.go` of the 2.5/2.6 line
(`ObjectPrivileges`, the v1 groups `ReadOnly`/`ReadWrite`/`Admin`, the v2 level groups
`Cluster*`/`Database*`/`Collection*` of `paramtable/rbac_param.go`) and the checks of
`internal/rootcoord/root_coord.go` (`isValidPrivilege`, `isValidPrivilegeV2`,
`validatePrivilegeGroupParams`, `getMetastorePrivilegeName`). Which names exist at all comes from
the `ObjectPrivilege` enum in the generated `privilege_table`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from milvus_auth.core.errors import InvalidParameter, RbacError
from milvus_auth.core.privilege_table import OBJECT_PRIVILEGE_NAMES, OBJECT_TYPE_NAMES

ANY = "*"
PRIVILEGE_WORD = "Privilege"
PRIVILEGE_GROUP_WORD = "PrivilegeGroup"
_ENUM_NAMES = frozenset(OBJECT_PRIVILEGE_NAMES)


class ObjectType(StrEnum):
    """commonpb.ObjectType: what a grant is about. There is no Database object type."""

    COLLECTION = "Collection"
    GLOBAL = "Global"
    USER = "User"


class PrivilegeLevel(StrEnum):
    """milvuspb.PrivilegeLevel: the scope a v2 privilege group applies to."""

    CLUSTER = "Cluster"
    DATABASE = "Database"
    COLLECTION = "Collection"


assert {t.value for t in ObjectType} == set(OBJECT_TYPE_NAMES), "regenerate privilege_table"


def metastore_name(api_name: str) -> str | None:
    """`PrivilegeNameForMetastore`: `Search` → `PrivilegeSearch`, `ReadOnly` →
    `PrivilegeGroupReadOnly`; None when the proto defines neither (a custom group, a typo)."""
    for word in (PRIVILEGE_WORD, PRIVILEGE_GROUP_WORD):
        if word + api_name in _ENUM_NAMES:
            return word + api_name
    return None


def stored_name(api_name: str, custom_groups: Collection[str]) -> str:
    """The name a grant stores (`getMetastorePrivilegeName`, plus `*` kept as is).

    Built-in privileges and groups first, then custom groups (`PrivilegeGroup<name>`).
    """
    if api_name == ANY:
        return ANY
    defined = metastore_name(api_name)
    if defined is not None:
        return defined
    if api_name in custom_groups:
        return PRIVILEGE_GROUP_WORD + api_name
    raise RbacError(f"not found the privilege name[{api_name}]")


def api_name(stored: str) -> str:
    """The API name of a stored privilege: strips `PrivilegeGroup` or `Privilege`; `*` stays."""
    for word in (PRIVILEGE_GROUP_WORD, PRIVILEGE_WORD):
        if stored.startswith(word) and len(stored) > len(word):
            return stored[len(word) :]
    return stored


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_COLLECTION_READ_ONLY = _names(
    "Query Search IndexDetail GetFlushState GetLoadState GetLoadingProgress HasPartition "
    "ShowPartitions DescribeCollection DescribeAlias GetStatistics ListAliases"
)
_COLLECTION_READ_WRITE = _COLLECTION_READ_ONLY + _names(
    "Load Release Insert Delete Upsert Import Flush Compaction LoadBalance CreateIndex "
    "DropIndex CreatePartition DropPartition"
)
_DATABASE_READ_ONLY = _names("ShowCollections DescribeDatabase")
_DATABASE_READ_WRITE = (*_DATABASE_READ_ONLY, "AlterDatabase")
_CLUSTER_READ_ONLY = _names(
    "ListDatabases SelectOwnership SelectUser DescribeResourceGroup ListResourceGroups "
    "ListPrivilegeGroups"
)
_CLUSTER_READ_WRITE = _CLUSTER_READ_ONLY + _names(
    "FlushAll TransferNode TransferReplica UpdateResourceGroups"
)
# The v1 groups (constant.go ReadOnlyPrivilegeGroup...): what casbin's privilegeGroupContains
# lets PrivilegeGroupReadOnly/ReadWrite/Admin grants match.
_V1_READ_ONLY = _names(
    "Query Search IndexDetail GetFlushState GetLoadState GetLoadingProgress HasPartition "
    "ShowPartitions ShowCollections ListAliases ListDatabases DescribeCollection "
    "DescribeDatabase DescribeAlias GetStatistics"
)
_V1_READ_WRITE = _V1_READ_ONLY + _names(
    "CreateIndex DropIndex CreateCollection DropCollection CreatePartition DropPartition Load "
    "Release Insert Delete Upsert Import Flush Compaction LoadBalance RenameCollection "
    "CreateAlias DropAlias"
)

BUILTIN_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ClusterReadOnly": _CLUSTER_READ_ONLY,
        "ClusterReadWrite": _CLUSTER_READ_WRITE,
        "ClusterAdmin": _CLUSTER_READ_WRITE
        + _names(
            "BackupRBAC RestoreRBAC CreateDatabase DropDatabase CreateOwnership DropOwnership "
            "ManageOwnership CreateResourceGroup DropResourceGroup UpdateUser RenameCollection "
            "CreatePrivilegeGroup DropPrivilegeGroup OperatePrivilegeGroup"
        ),
        "DatabaseReadOnly": _DATABASE_READ_ONLY,
        "DatabaseReadWrite": _DATABASE_READ_WRITE,
        "DatabaseAdmin": (*_DATABASE_READ_WRITE, "CreateCollection", "DropCollection"),
        "CollectionReadOnly": _COLLECTION_READ_ONLY,
        "CollectionReadWrite": _COLLECTION_READ_WRITE,
        "CollectionAdmin": (*_COLLECTION_READ_WRITE, "CreateAlias", "DropAlias"),
    }
)
"""The nine v2 built-in groups (`GetDefaultPrivilegeGroups`), API names, Milvus's defaults."""

V1_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ReadOnly": _V1_READ_ONLY,
        "ReadWrite": _V1_READ_WRITE,
        "Admin": _V1_READ_WRITE
        + _names(
            "CreateOwnership DropOwnership SelectOwnership ManageOwnership SelectUser UpdateUser "
            "BackupRBAC RestoreRBAC CreateResourceGroup UpdateResourceGroups DropResourceGroup "
            "DescribeResourceGroup ListResourceGroups TransferReplica TransferNode "
            "CreateDatabase DropDatabase AlterDatabase"
        ),
    }
)
"""The v1 groups' members (constant.go; Admin's duplicate entries dropped)."""

_LEVEL_MEMBERS = (
    (PrivilegeLevel.CLUSTER, frozenset(BUILTIN_GROUPS["ClusterAdmin"])),
    (PrivilegeLevel.DATABASE, frozenset(BUILTIN_GROUPS["DatabaseAdmin"])),
    (PrivilegeLevel.COLLECTION, frozenset(BUILTIN_GROUPS["CollectionAdmin"])),
)

OBJECT_PRIVILEGES: Mapping[ObjectType, frozenset[str]] = MappingProxyType(
    {
        ObjectType.COLLECTION: frozenset(
            _names(
                "Load Release Compaction Insert Delete Upsert GetStatistics CreateIndex "
                "IndexDetail DropIndex Search Flush Query LoadBalance Import GetLoadingProgress "
                "GetLoadState CreatePartition DropPartition ShowPartitions HasPartition "
                "GetFlushState ReadOnly ReadWrite"
            )
        ),
        ObjectType.GLOBAL: frozenset(
            _names(
                "All CreateCollection DropCollection DescribeCollection ShowCollections "
                "RenameCollection CreateOwnership DropOwnership SelectOwnership ManageOwnership "
                "BackupRBAC RestoreRBAC CreateResourceGroup UpdateResourceGroups "
                "DropResourceGroup DescribeResourceGroup ListResourceGroups TransferReplica "
                "TransferNode FlushAll CreateDatabase DropDatabase ListDatabases AlterDatabase "
                "DescribeDatabase CreateAlias DropAlias DescribeAlias ListAliases Admin "
                "CreatePrivilegeGroup DropPrivilegeGroup ListPrivilegeGroups "
                "OperatePrivilegeGroup"
            )
            + tuple(BUILTIN_GROUPS)
        ),
        ObjectType.USER: frozenset(("UpdateUser", "SelectUser")),
    }
)
"""`util.ObjectPrivileges`: which API names a v1 grant accepts per object type."""


def privilege_level(privilege: str) -> PrivilegeLevel | None:
    """`GetPrivilegeLevel`: the first level whose admin group contains the privilege."""
    for level, members in _LEVEL_MEMBERS:
        if privilege in members:
            return level
    return None


def object_type_for(privilege: str) -> ObjectType:
    """`GetObjectType`: the object type a v2 grant is stored under (custom groups: Global)."""
    for object_type in (ObjectType.COLLECTION, ObjectType.USER):
        if privilege in OBJECT_PRIVILEGES[object_type]:
            return object_type
    return ObjectType.GLOBAL


def parse_object_type(name: str) -> ObjectType:
    """An object type by its proto name, or Milvus's refusal (`isValidObject`)."""
    try:
        return ObjectType(name)
    except ValueError:
        supported = " ".join(sorted(OBJECT_TYPE_NAMES))
        raise RbacError(
            f"not found the object type[name: {name}], supported the object types: [{supported}]"
        ) from None


def validate_v1(privilege: str, object_type: ObjectType, custom_groups: Collection[str]) -> None:
    """`isValidPrivilege`: a v1 grant names one built-in privilege valid for its object type."""
    if privilege == ANY:
        return
    if privilege in custom_groups:
        raise RbacError(f"can not operate the custom privilege group [{privilege}]")
    if privilege in BUILTIN_GROUPS:
        raise RbacError(f"can not operate the built-in privilege group [{privilege}]")
    if metastore_name(privilege) is not None and privilege in OBJECT_PRIVILEGES[object_type]:
        return
    raise RbacError(f"not found the privilege name[{privilege}] in object[{object_type}]")


def validate_v2(
    privilege: str, *, database: str, collection: str, custom_groups: Mapping[str, Sequence[str]]
) -> None:
    """`isValidPrivilegeV2` + `validatePrivilegeGroupParams`: any defined privilege or group,
    and a group's level must fit the database and collection it is granted on."""
    if privilege == ANY:
        return
    if privilege not in custom_groups and metastore_name(privilege) is None:
        raise RbacError(f"not found the privilege name[{privilege}]")
    members = custom_groups.get(privilege) or BUILTIN_GROUPS.get(privilege)
    if not members:
        return  # a single privilege (or an empty group): no level to check
    level = privilege_level(members[0])  # one level per group: the first decides
    if level is PrivilegeLevel.CLUSTER:
        if database != ANY or collection != ANY:
            raise InvalidParameter(
                f"dbName and collectionName should be * for the cluster level privilege: "
                f"{privilege}"
            )
    elif level is PrivilegeLevel.DATABASE:
        if collection not in ("", ANY):
            raise InvalidParameter(
                f"collectionName should be * for the database level privilege: {privilege}"
            )
    elif level is PrivilegeLevel.COLLECTION:
        if database == ANY and collection not in ("", ANY):
            raise InvalidParameter(
                f"please specify database name for the collection level privilege: {privilege}"
            )
    else:
        raise RbacError("not found the privilege level")
