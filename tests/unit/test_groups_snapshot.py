"""Privilege groups encoded as Go's proto.Marshal does; snapshots parsed from Milvus's keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.core.errors import MalformedRecord
from milvus_auth.core.grants import GrantTarget, RbacLayout
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import StoredGrant, parse_snapshot

_NAMES = st.text(max_size=40)


def _reference(group: PrivilegeGroup) -> bytes:
    message = milvus_pb2.PrivilegeGroupInfo(
        group_name=group.name,
        privileges=[milvus_pb2.PrivilegeEntity(name=name) for name in group.privileges],
    )
    return message.SerializeToString(deterministic=True)


@given(name=_NAMES, privileges=st.lists(_NAMES, max_size=8))
def test_encoding_is_protobufs(name: str, privileges: list[str]) -> None:
    group = PrivilegeGroup(name, tuple(privileges))
    assert group.encode() == _reference(group)
    assert PrivilegeGroup.decode("k", _reference(group)) == group


def test_unknown_fields_are_skipped() -> None:
    message = milvus_pb2.PrivilegeGroupInfo(group_name="g")
    extra = b"\x18\x07" + b"\x25\x01\x02\x03\x04" + b"\x32\x01x"  # varint, fixed32, bytes fields
    assert PrivilegeGroup.decode("k", message.SerializeToString() + extra) == PrivilegeGroup("g")


@given(st.binary(max_size=200))
def test_decoding_garbage_is_malformed_or_a_group(raw: bytes) -> None:
    try:
        group = PrivilegeGroup.decode("k", raw)
    except MalformedRecord:
        return
    assert PrivilegeGroup.decode("k", group.encode()) == group


@pytest.mark.parametrize(
    "raw", [b"\x0a\x05ab", b"\x0a", b"\x0b", b"\x00\x01", b"\x12\x03\x0a\x05a"]
)
def test_truncated_values_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedRecord):
        PrivilegeGroup.decode("k", raw)


def test_snapshot_joins_grants_and_ids() -> None:
    layout = RbacLayout("m")
    reader = GrantTarget("reader", ObjectType.COLLECTION, "default", "*")
    revoked = GrantTarget("reader", ObjectType.GLOBAL, "default", "*")
    legacy_key = "m/root-coord/credential/grantee-privileges/old/Collection/c1"
    snapshot = parse_snapshot(
        layout,
        42,
        roles=[
            ("m/root-coord/credential/roles/reader", b""),
            ("m/root-coord/credential/roles/old", b""),
        ],
        bindings=[("m/root-coord/credential/user-role-mapping/alice/reader", b"")],
        grants=[
            (layout.grant_key(reader), b"id1"),
            (layout.grant_key(revoked), b"id2"),
            (legacy_key, b"id3"),
        ],
        privileges=[
            (layout.privilege_key("id1", "PrivilegeSearch"), b"root"),
            (layout.privilege_key("id1", "PrivilegeQuery"), b"bob"),
            (layout.privilege_key("id3", "*"), b"root"),
            (layout.privilege_key("orphan", "PrivilegeInsert"), b"root"),
        ],
        groups=[(layout.group_key("g"), PrivilegeGroup("g", ("Search",)).encode())],
    )
    assert snapshot.revision == 42
    assert snapshot.roles == {"reader", "old"}
    assert snapshot.roles_of("alice") == {"reader"}
    assert snapshot.users_of("reader") == {"alice"}
    assert snapshot.grants_of("reader") == (
        StoredGrant(reader, "PrivilegeSearch", "root"),
        StoredGrant(reader, "PrivilegeQuery", "bob"),
    )
    assert snapshot.grants_of("old") == (
        StoredGrant(GrantTarget("old", ObjectType.COLLECTION, "default", "c1"), "*", "root"),
    )
    assert dict(snapshot.groups) == {"g": PrivilegeGroup("g", ("Search",))}
