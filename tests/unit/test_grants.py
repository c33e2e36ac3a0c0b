"""RBAC keys, grantee ids and policy strings, byte for byte as Milvus writes them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_auth.core.errors import RbacError
from milvus_auth.core.grants import (
    GrantTarget,
    Policy,
    RbacLayout,
    combine_object_name,
    grantee_id,
    split_object_name,
)
from milvus_auth.core.privileges import ObjectType

LAYOUT = RbacLayout("acc/meta")


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        # Observed on a real Milvus 2.3.5 (milvus-rbac.md, and this project's differential test).
        (
            "root-coord/credential/grantee-privileges/reader/Collection/default.*",
            "06a8a0982cd65dd1",
        ),
        ("root-coord/credential/grantee-privileges/public/Global/*.*", "250dd41b686083b0"),
        ("root-coord/credential/grantee-privileges/public/Collection/*.*", "e03326696e8a3b16"),
    ],
)
def test_grantee_ids_are_milvus_md5_middle(relative: str, expected: str) -> None:
    assert grantee_id(relative) == expected


def test_keys_of_the_worked_example() -> None:
    target = GrantTarget("reader", ObjectType.COLLECTION, "", "*")
    assert LAYOUT.role_key("reader") == "acc/meta/root-coord/credential/roles/reader"
    assert LAYOUT.mapping_key("u1", "reader") == (
        "acc/meta/root-coord/credential/user-role-mapping/u1/reader"
    )
    assert LAYOUT.grant_key(target) == (
        "acc/meta/root-coord/credential/grantee-privileges/reader/Collection/default.*"
    )
    assert LAYOUT.grantee_id_for(target) == "06a8a0982cd65dd1"
    assert LAYOUT.privilege_key("06a8a0982cd65dd1", "PrivilegeSearch") == (
        "acc/meta/root-coord/credential/grantee-id/06a8a0982cd65dd1/PrivilegeSearch"
    )
    assert LAYOUT.group_key("g") == "acc/meta/root-coord/privilege-group/g"
    # The id does not depend on the meta root: it hashes the key relative to it.
    assert RbacLayout("/other/meta/").grantee_id_for(target) == "06a8a0982cd65dd1"


def test_policy_json_is_milvus_text() -> None:
    policy = GrantTarget("r1", ObjectType.COLLECTION, "db1", "*").policy("PrivilegeSearch")
    assert policy.to_json() == (
        '{"PType":"p","V0":"r1","V1":"Collection-db1.*","V2":"PrivilegeSearch"}'
    )
    assert Policy.parse(policy.to_json()) == policy


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"PType":"g","V0":"r","V1":"o","V2":"p"}',
        '{"PType":"p","V0":"r","V1":"o"}',
        '{"PType":"p","V0":1,"V1":"o","V2":"p"}',
        '{"PType":"p","V0":"","V1":"o","V2":"p"}',
        "[" * 100_000,
    ],
)
def test_malformed_policies_are_rbac_errors(text: str) -> None:
    with pytest.raises(RbacError, match="invalid policy"):
        Policy.parse(text)


@given(st.text(max_size=300))
def test_policy_parse_accepts_or_raises_rbac_error(text: str) -> None:
    try:
        policy = Policy.parse(text)
    except RbacError:
        return
    assert json.loads(text)["V0"] == policy.role


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_$]{0,20}", fullmatch=True)


@given(
    role=_NAME,
    object_type=st.sampled_from(ObjectType),
    db=_NAME,
    name=st.one_of(_NAME, st.just("*")),
)
def test_grant_keys_round_trip(role: str, object_type: ObjectType, db: str, name: str) -> None:
    target = GrantTarget(role, object_type, db, name)
    assert LAYOUT.parse_grant_key(LAYOUT.grant_key(target)) == target
    policy = target.policy("PrivilegeSearch")
    assert Policy.parse(policy.to_json()) == policy


def test_legacy_grant_keys_are_in_default() -> None:
    key = "acc/meta/root-coord/credential/grantee-privileges/r1/Collection/c1"
    assert LAYOUT.parse_grant_key(key) == GrantTarget("r1", ObjectType.COLLECTION, "default", "c1")


@pytest.mark.parametrize(
    "key",
    [
        "acc/meta/root-coord/credential/grantee-privileges/r1",
        "acc/meta/root-coord/credential/grantee-privileges/r1/Database/db.c",
        "acc/meta/root-coord/credential/roles/r1",
    ],
)
def test_malformed_grant_keys(key: str) -> None:
    with pytest.raises(RbacError):
        LAYOUT.parse_grant_key(key)


def test_object_names() -> None:
    assert combine_object_name("", "c1") == "default.c1"
    assert combine_object_name("*", "*") == "*.*"
    assert split_object_name("db1.c1") == ("db1", "c1")
    assert split_object_name("c1") == ("default", "c1")
    assert LAYOUT.parse_mapping_key(LAYOUT.mapping_key("u", "r")) == ("u", "r")
    assert LAYOUT.parse_privilege_key(LAYOUT.privilege_key("id", "*")) == ("id", "*")
