"""The pure parts of the RBAC RPCs: statuses, group rules, grant listing, restore checks."""

from __future__ import annotations

import pytest
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.core.errors import MilvusError
from milvus_auth.core.grants import GrantTarget
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.proxy.services.rbac_backup import check_restorable
from milvus_auth.proxy.services.rbac_errors import Refused, invalid, rbac_status, wrapped
from milvus_auth.proxy.services.rbac_grants import listed_grants
from milvus_auth.proxy.services.rbac_groups import altered_members, validate_group_name
from milvus_auth.proxy.services.rbac_roles import role_entity_text


def test_proxy_and_rootcoord_refusals_differ_only_where_milvus_does() -> None:
    error = invalid("x")
    assert rbac_status(error, failure_code=None) == milvus_pb2.common__pb2.Status(
        error_code=5, code=1100, reason="x: invalid parameter", detail="x: invalid parameter"
    )
    assert rbac_status(wrapped("p", error), failure_code=35) == milvus_pb2.common__pb2.Status(
        error_code=35, code=1100, reason="p: x: invalid parameter"
    )
    assert rbac_status(Refused("plain"), failure_code=None).error_code == 1  # UnexpectedError


@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [
        ("", 1402, "privilege group name should not be empty: invalid privilege group name"),
        ("9a", 1402, "the first character of a privilege group name 9a must be an underscore "
                     "or letter: invalid privilege group name"),
        ("a$", 1100, "privilege group name a$ can only contain numbers, letters and "
                     "underscores: invalid parameter"),
        (" a", 1402, "the first character of a privilege group name  a must be an underscore "
                     "or letter: invalid privilege group name"),
    ],
)  # fmt: skip
def test_group_names_as_milvus_checks_them(name: str, code: int, reason: str) -> None:
    with pytest.raises(MilvusError) as refused:
        validate_group_name(name)
    assert (refused.value.code, refused.value.reason) == (code, reason)


def test_group_members_one_level_appended_in_order() -> None:
    current = ("Search",)
    assert altered_members(current, ["Query", "Search"], add=True, custom=frozenset()) == (
        "Search", "Query",
    )  # fmt: skip
    assert altered_members(("Search", "Query"), ["Search"], add=False,
                           custom=frozenset()) == ("Query",)  # fmt: skip
    with pytest.raises(MilvusError, match="not the same privilege level"):
        altered_members(current, ["CreateDatabase"], add=True, custom=frozenset())
    with pytest.raises(MilvusError, match=r"privilege group name \[Nope\] defined"):
        altered_members(current, ["Nope"], add=True, custom=frozenset())
    with pytest.raises(MilvusError, match="privileges is empty"):
        altered_members(current, [], add=False, custom=frozenset())


def _grant(
    database: str, name: str, object_type: ObjectType = ObjectType.COLLECTION
) -> StoredGrant:
    return StoredGrant(GrantTarget("r", object_type, database, name), "PrivilegeSearch", "root")


def test_listed_grants_follow_list_grant() -> None:
    grants = (_grant("db1", "c1"), _grant("*", "c1"), _grant("default", "c1"), _grant("db1", "c2"))
    snapshot = PolicySnapshot(revision=1, roles=frozenset({"r"}), grants=grants)
    in_db1 = listed_grants(snapshot, "r", database="db1", object_type=None, name="")
    assert in_db1 == [grants[0], grants[1], grants[3]]
    everywhere = listed_grants(snapshot, "r", database="*", object_type=None, name="")
    assert everywhere == list(grants)
    on_c1 = listed_grants(snapshot, "r", database="", object_type="Collection", name="c1")
    assert on_c1 == [grants[1], grants[2]]  # db `*` first, then the exact database


def test_restore_refuses_what_exists_or_is_missing() -> None:
    snapshot = PolicySnapshot(
        revision=1, roles=frozenset({"admin", "r"}), groups={"g": PrivilegeGroup("g")}
    )
    role = milvus_pb2.RoleEntity
    cases = [
        (milvus_pb2.RBACMeta(roles=[role(name="r")]), "role [r] already exists"),
        (milvus_pb2.RBACMeta(privilege_groups=[milvus_pb2.PrivilegeGroupInfo(group_name="g")]),
         "privilege group [g] already exists"),
        (milvus_pb2.RBACMeta(grants=[milvus_pb2.GrantEntity(grantor=milvus_pb2.GrantorEntity(
            privilege=milvus_pb2.PrivilegeEntity(name="Nope")))]), "privilege [Nope] does not exist"),
        (milvus_pb2.RBACMeta(users=[milvus_pb2.UserInfo(user="bob")]), "user [bob] already exists"),
        (milvus_pb2.RBACMeta(users=[milvus_pb2.UserInfo(user="eve", roles=[role(name="x")])]),
         "role [x] does not exist"),
    ]  # fmt: skip
    for meta, reason in cases:
        with pytest.raises(MilvusError) as refused:
            check_restorable(meta, snapshot, frozenset({"bob"}))
        assert refused.value.reason == reason
    fine = milvus_pb2.RBACMeta(
        roles=[role(name="new")],
        users=[milvus_pb2.UserInfo(user="eve", roles=[role(name="new"), role(name="r")])],
    )
    check_restorable(fine, snapshot, frozenset({"bob"}))


def test_role_entity_text_is_go_protobuf_text() -> None:
    assert role_entity_text(milvus_pb2.RoleEntity(name="r1")) == 'name:"r1"'
    described = milvus_pb2.RoleEntity(name="r1", description="d")
    assert role_entity_text(described) == 'name:"r1" description:"d"'
