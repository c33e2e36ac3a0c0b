"""Privilege names, object types, groups, levels and grant validation, as Milvus 2.6 has them."""

from __future__ import annotations

import pytest

from milvus_auth.core.errors import InvalidParameter, RbacError
from milvus_auth.core.privilege_table import METHOD_PRIVILEGES, OBJECT_PRIVILEGE_NAMES
from milvus_auth.core.privileges import (
    ANY,
    BUILTIN_GROUPS,
    OBJECT_PRIVILEGES,
    V1_GROUPS,
    ObjectType,
    PrivilegeLevel,
    api_name,
    metastore_name,
    object_type_for,
    parse_object_type,
    privilege_level,
    stored_name,
    validate_v1,
    validate_v2,
)


@pytest.mark.parametrize(
    ("api", "stored"),
    [
        ("Search", "PrivilegeSearch"),
        ("All", "PrivilegeAll"),
        ("ReadOnly", "PrivilegeGroupReadOnly"),
        ("ClusterAdmin", "PrivilegeGroupClusterAdmin"),
        ("CollectionReadWrite", "PrivilegeGroupCollectionReadWrite"),
        ("Nope", None),
        ("", None),
    ],
)
def test_metastore_names(api: str, stored: str | None) -> None:
    assert metastore_name(api) == stored
    if stored is not None:
        assert api_name(stored) == api


def test_stored_names_of_any_and_custom_groups() -> None:
    assert stored_name(ANY, ()) == "*"
    assert stored_name("mygroup", {"mygroup"}) == "PrivilegeGroupmygroup"
    assert api_name("PrivilegeGroupmygroup") == "mygroup"
    assert api_name("*") == "*"
    assert stored_name("Search", {"Search"}) == "PrivilegeSearch"  # built-in names win
    with pytest.raises(RbacError, match=r"^not found the privilege name\[nope\]$"):
        stored_name("nope", ())


def test_every_listed_privilege_is_defined_by_the_proto() -> None:
    for names in (*OBJECT_PRIVILEGES.values(), *BUILTIN_GROUPS.values(), *V1_GROUPS.values()):
        for name in names:
            assert metastore_name(name) in OBJECT_PRIVILEGE_NAMES, name
    # Every privilege a method needs can be granted on that method's object type.
    for row in METHOD_PRIVILEGES.values():
        assert metastore_name(row.privilege) is not None, row
        if row.privilege not in ("AddCollectionField", "GetImportProgress", "ListImport"):
            assert object_type_for(row.privilege) in (
                ObjectType(row.object_type),
                ObjectType.GLOBAL,
            )


def test_builtin_groups_nest_by_level() -> None:
    for level in ("Cluster", "Database", "Collection"):
        read_only, read_write, admin = (
            set(BUILTIN_GROUPS[level + s]) for s in ("ReadOnly", "ReadWrite", "Admin")
        )
        assert read_only < read_write < admin
    assert len(BUILTIN_GROUPS) == 9
    assert set(V1_GROUPS["ReadOnly"]) < set(V1_GROUPS["ReadWrite"]) < set(V1_GROUPS["Admin"])
    assert len(V1_GROUPS["Admin"]) == len(set(V1_GROUPS["Admin"]))


@pytest.mark.parametrize(
    ("privilege", "level"),
    [
        ("ListDatabases", PrivilegeLevel.CLUSTER),
        ("CreateDatabase", PrivilegeLevel.CLUSTER),
        ("RenameCollection", PrivilegeLevel.CLUSTER),
        ("ShowCollections", PrivilegeLevel.DATABASE),
        ("CreateCollection", PrivilegeLevel.DATABASE),
        ("Search", PrivilegeLevel.COLLECTION),
        ("DropAlias", PrivilegeLevel.COLLECTION),
        ("All", None),
    ],
)
def test_privilege_levels(privilege: str, level: PrivilegeLevel | None) -> None:
    assert privilege_level(privilege) is level


@pytest.mark.parametrize(
    ("privilege", "object_type"),
    [
        ("Search", ObjectType.COLLECTION),
        ("ReadOnly", ObjectType.COLLECTION),
        ("UpdateUser", ObjectType.USER),
        ("CreateCollection", ObjectType.GLOBAL),
        ("Admin", ObjectType.GLOBAL),
        ("CollectionReadOnly", ObjectType.GLOBAL),
        ("mygroup", ObjectType.GLOBAL),
        ("*", ObjectType.GLOBAL),
    ],
)
def test_object_type_of_a_v2_grant(privilege: str, object_type: ObjectType) -> None:
    assert object_type_for(privilege) is object_type


def test_object_types() -> None:
    assert parse_object_type("Collection") is ObjectType.COLLECTION
    with pytest.raises(RbacError) as caught:
        parse_object_type("Database")
    assert caught.value.reason == (
        "not found the object type[name: Database], supported the object types: "
        "[Collection Global User]"
    )
    assert caught.value.code == 65535


@pytest.mark.parametrize(
    ("privilege", "object_type", "reason"),
    [
        ("Search", ObjectType.COLLECTION, None),
        ("*", ObjectType.USER, None),
        ("All", ObjectType.GLOBAL, None),
        ("ReadOnly", ObjectType.COLLECTION, None),
        ("Search", ObjectType.GLOBAL, "not found the privilege name[Search] in object[Global]"),
        ("Nope", ObjectType.COLLECTION, "not found the privilege name[Nope] in object[Collection]"),
        (
            "ClusterReadOnly",
            ObjectType.GLOBAL,
            "can not operate the built-in privilege group [ClusterReadOnly]",
        ),
        ("mine", ObjectType.GLOBAL, "can not operate the custom privilege group [mine]"),
    ],
)
def test_v1_validation(privilege: str, object_type: ObjectType, reason: str | None) -> None:
    if reason is None:
        validate_v1(privilege, object_type, {"mine"})
        return
    with pytest.raises(RbacError) as caught:
        validate_v1(privilege, object_type, {"mine"})
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("privilege", "database", "collection", "reason"),
    [
        ("Search", "db1", "c1", None),
        ("*", "db1", "c1", None),
        ("mine", "db1", "c1", None),  # custom group of collection-level privileges
        ("empty", "*", "c1", None),  # an empty group is checked like a privilege
        ("ClusterReadOnly", "*", "*", None),
        (
            "ClusterAdmin",
            "db1",
            "*",
            "dbName and collectionName should be * for the cluster level privilege: ClusterAdmin: invalid parameter",
        ),
        ("DatabaseReadOnly", "db1", "*", None),
        ("DatabaseReadOnly", "db1", "", None),
        (
            "DatabaseAdmin",
            "db1",
            "c1",
            "collectionName should be * for the database level privilege: DatabaseAdmin: invalid parameter",
        ),
        ("CollectionReadOnly", "db1", "c1", None),
        ("CollectionReadOnly", "*", "*", None),
        (
            "CollectionReadOnly",
            "*",
            "c1",
            "please specify database name for the collection level privilege: CollectionReadOnly: invalid parameter",
        ),
        (
            "mine",
            "*",
            "c1",
            "please specify database name for the collection level privilege: mine: invalid parameter",
        ),
        ("Nope", "db1", "c1", "not found the privilege name[Nope]"),
    ],
)
def test_v2_validation(privilege: str, database: str, collection: str, reason: str | None) -> None:
    groups = {"mine": ["Search", "Query"], "empty": []}
    if reason is None:
        validate_v2(privilege, database=database, collection=collection, custom_groups=groups)
        return
    with pytest.raises((RbacError, InvalidParameter)) as caught:
        validate_v2(privilege, database=database, collection=collection, custom_groups=groups)
    assert caught.value.reason == reason
