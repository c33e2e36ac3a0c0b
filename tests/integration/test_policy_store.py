"""The policy store against a real etcd: Milvus's bytes, compare-and-swap, snapshot, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from milvus_auth.core import CredentialRecord
from milvus_auth.core.errors import (
    GranteeNotFound,
    InvalidParameter,
    RoleExists,
    RoleHasGrants,
    RoleNotFound,
)
from milvus_auth.core.grants import GrantTarget, RbacLayout
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import ObjectType
from milvus_auth.store import (
    CredentialStore,
    EtcdSettings,
    KeyChanged,
    PolicyStore,
    RevisionConflict,
    WatchLost,
    WatchRestored,
    watch_policy,
)
from tests.harness.processes import EtcdServer

HASH = "$2a$04$" + "a" * 53
SEARCH_ANY = GrantTarget("reader", ObjectType.COLLECTION, "", "*")


@pytest.fixture
async def policy(etcd_settings: EtcdSettings, meta_root: str) -> AsyncIterator[PolicyStore]:
    async with PolicyStore(etcd_settings, RbacLayout(meta_root)) as policy_store:
        yield policy_store


async def _dump(policy: PolicyStore) -> dict[str, bytes]:
    root = policy.layout.root + "/root-coord/"
    found = await policy.connection.call(lambda c: c.get_prefix(root.encode()))
    return {kv.key.decode()[len(root) :]: kv.value for kv in found if b"/users/" not in kv.key}


async def test_writes_are_milvus_bytes(policy: PolicyStore, store: CredentialStore) -> None:
    await store.create(CredentialRecord("u1", HASH))
    await policy.create_role("reader")
    assert await policy.grant(SEARCH_ANY, "PrivilegeSearch", "root") is True
    await policy.bind("u1", "reader")
    # The keys and values Milvus 2.3.5 wrote for the same operations (milvus-rbac.md).
    assert await _dump(policy) == {
        "credential/roles/reader": b"",
        "credential/user-role-mapping/u1/reader": b"",
        "credential/grantee-privileges/reader/Collection/default.*": b"06a8a0982cd65dd1",
        "credential/grantee-id/06a8a0982cd65dd1/PrivilegeSearch": b"root",
    }


async def test_roles_create_once_and_drop(policy: PolicyStore) -> None:
    await policy.create_role("r1")
    with pytest.raises(RoleExists, match=r'role \[name:"r1"\] already exists'):
        await policy.create_role("r1")
    assert await policy.list_roles() == ["r1"]
    await policy.drop_role("r1")
    assert await policy.list_roles() == []
    with pytest.raises(RoleNotFound):
        await policy.drop_role("r1")


async def test_grants_keep_ids_grantors_and_revoke_only_the_leaf(policy: PolicyStore) -> None:
    await policy.create_role("reader")
    assert await policy.grant(SEARCH_ANY, "PrivilegeSearch", "root")
    assert not await policy.grant(SEARCH_ANY, "PrivilegeSearch", "bob")  # first grantor stays
    assert await policy.grant(SEARCH_ANY, "PrivilegeQuery", "bob")
    snapshot = await policy.snapshot()
    assert {(g.privilege, g.grantor) for g in snapshot.grants_of("reader")} == {
        ("PrivilegeSearch", "root"),
        ("PrivilegeQuery", "bob"),
    }
    assert await policy.revoke(SEARCH_ANY, "PrivilegeSearch")
    assert not await policy.revoke(SEARCH_ANY, "PrivilegeSearch")
    assert not await policy.revoke(GrantTarget("reader", ObjectType.GLOBAL, "", "*"), "*")
    dump = await _dump(policy)
    assert dump["credential/grantee-privileges/reader/Collection/default.*"] == b"06a8a0982cd65dd1"
    assert "credential/grantee-id/06a8a0982cd65dd1/PrivilegeSearch" not in dump


async def test_legacy_grant_keys_are_used_in_default(policy: PolicyStore) -> None:
    await policy.create_role("reader")
    legacy = f"{policy.layout.grants_prefix}reader/Collection/c1"
    await policy.connection.call(lambda c: c.put(legacy.encode(), b"oldid"))
    target = GrantTarget("reader", ObjectType.COLLECTION, "default", "c1")
    assert await policy.grant(target, "PrivilegeQuery", "root")
    dump = await _dump(policy)
    assert dump["credential/grantee-id/oldid/PrivilegeQuery"] == b"root"
    assert "credential/grantee-privileges/reader/Collection/default.c1" not in dump
    assert (await policy.snapshot()).grants_of("reader")[0].target == target
    assert await policy.revoke(target, "PrivilegeQuery")
    # Another database never uses the legacy key.
    other = GrantTarget("reader", ObjectType.COLLECTION, "db1", "c1")
    assert await policy.grant(other, "PrivilegeQuery", "root")
    assert "credential/grantee-privileges/reader/Collection/db1.c1" in await _dump(policy)


async def test_grant_to_a_missing_role_is_refused(policy: PolicyStore) -> None:
    with pytest.raises(RoleNotFound):
        await policy.grant(SEARCH_ANY, "PrivilegeSearch", "root")
    assert await _dump(policy) == {}


async def test_bind_needs_role_and_user(policy: PolicyStore, store: CredentialStore) -> None:
    with pytest.raises(RoleNotFound):
        await policy.bind("u1", "reader")
    await policy.create_role("reader")
    with pytest.raises(GranteeNotFound):
        await policy.bind("u1", "reader")
    await store.create(CredentialRecord("u1", HASH))
    await policy.bind("u1", "reader")
    assert (await policy.snapshot()).roles_of("u1") == {"reader"}
    assert await policy.unbind("u1", "reader")
    assert not await policy.unbind("u1", "reader")
    with pytest.raises(RoleNotFound):
        await policy.unbind("u1", "nobody")


async def test_drop_role_with_grants_needs_force(
    policy: PolicyStore, store: CredentialStore
) -> None:
    await store.create(CredentialRecord("u1", HASH))
    await store.create(CredentialRecord("u2", HASH))
    for role in ("reader", "other"):
        await policy.create_role(role)
        await policy.grant(
            GrantTarget(role, ObjectType.COLLECTION, "db1", "c1"), "PrivilegeSearch", "root"
        )
        await policy.bind("u1", role)
    await policy.bind("u2", "reader")
    with pytest.raises(RoleHasGrants):
        await policy.drop_role("reader")
    await policy.drop_role("reader", force=True)
    remaining = await _dump(policy)
    assert not [key for key in remaining if "reader" in key]
    assert len([key for key in remaining if "/grantee-id/" in key]) == 1  # other's grant stays
    snapshot = await policy.snapshot()
    assert snapshot.roles == {"other"}
    assert snapshot.bindings == {("u1", "other")}


async def test_drop_role_after_revoking_everything(policy: PolicyStore) -> None:
    await policy.create_role("reader")
    await policy.grant(SEARCH_ANY, "PrivilegeSearch", "root")
    await policy.revoke(SEARCH_ANY, "PrivilegeSearch")
    await policy.drop_role("reader")  # an emptied grant key is no grant (Milvus ListGrant)
    # ...and it stays behind, as a stock RootCoord leaves it (test_real_milvus checks this).
    assert await _dump(policy) == {
        "credential/grantee-privileges/reader/Collection/default.*": b"06a8a0982cd65dd1"
    }


async def test_drop_role_with_many_bindings_spans_batches(policy: PolicyStore) -> None:
    await policy.create_role("crowd")
    for index in range(150):
        key = policy.layout.mapping_key(f"user{index}", "crowd")
        await policy.connection.call(lambda c, key=key: c.put(key.encode(), b""))
    await policy.drop_role("crowd")
    assert await _dump(policy) == {}


async def test_concurrent_grants_all_land(policy: PolicyStore) -> None:
    await policy.create_role("reader")
    privileges = ["PrivilegeSearch", "PrivilegeQuery", "PrivilegeInsert", "PrivilegeDelete"]
    results = await asyncio.gather(
        *(policy.grant(SEARCH_ANY, privilege, "root") for privilege in privileges)
    )
    assert results == [True] * 4
    snapshot = await policy.snapshot()
    assert {grant.privilege for grant in snapshot.grants} == set(privileges)


async def test_groups_round_trip_with_cas(policy: PolicyStore) -> None:
    await policy.create_group("g")
    with pytest.raises(InvalidParameter, match=r"privilege group name \[g\] is defined by users"):
        await policy.create_group("g")
    found = await policy.get_group("g")
    assert found is not None
    group, revision = found
    assert group == PrivilegeGroup("g")
    await policy.update_group(PrivilegeGroup("g", ("Search", "Query")), expected_revision=revision)
    with pytest.raises(RevisionConflict):
        await policy.update_group(PrivilegeGroup("g", ("Insert",)), expected_revision=revision)
    assert dict((await policy.snapshot()).groups) == {"g": PrivilegeGroup("g", ("Search", "Query"))}
    assert await policy.drop_group("g")
    assert not await policy.drop_group("g")


async def test_snapshot_revision_and_watch_see_everything_after_it(
    policy: PolicyStore, store: CredentialStore
) -> None:
    await policy.create_role("before")
    snapshot = await policy.snapshot()
    events = watch_policy(policy, start_revision=snapshot.revision + 1)
    await policy.create_role("reader")
    await store.create(CredentialRecord("u1", HASH))  # a user record is not a policy event
    await policy.bind("u1", "reader")
    await policy.grant(SEARCH_ANY, "PrivilegeSearch", "root")
    await policy.create_group("g")
    await policy.drop_role("reader", force=True)
    seen: list[tuple[str, bool]] = []
    while len(seen) < 9:
        event = await asyncio.wait_for(events.__anext__(), 15)
        assert isinstance(event, KeyChanged)
        seen.append((event.key[len(policy.layout.root) + 1 :], event.deleted))
    await events.aclose()
    ids = "root-coord/credential/grantee-id/06a8a0982cd65dd1"
    grant = "root-coord/credential/grantee-privileges/reader/Collection/default.*"
    assert sorted(seen) == sorted(
        [
            ("root-coord/credential/roles/reader", False),
            ("root-coord/credential/user-role-mapping/u1/reader", False),
            (grant, False),
            (f"{ids}/PrivilegeSearch", False),
            ("root-coord/privilege-group/g", False),
            ("root-coord/credential/roles/reader", True),
            ("root-coord/credential/user-role-mapping/u1/reader", True),
            (grant, True),
            (f"{ids}/PrivilegeSearch", True),
        ]
    )


async def test_policy_watch_survives_etcd_restart(etcd: EtcdServer, policy: PolicyStore) -> None:
    events = watch_policy(policy, retry_delay=0.1, max_retry_delay=0.5)
    pending = asyncio.ensure_future(asyncio.wait_for(events.__anext__(), 15))
    await asyncio.sleep(0.3)
    etcd.stop()
    assert await pending == WatchLost()
    restored = asyncio.ensure_future(asyncio.wait_for(events.__anext__(), 30))
    await asyncio.sleep(0.5)
    etcd.start()
    assert await restored == WatchRestored(missed=False)
    await policy.create_group("after")
    event = await asyncio.wait_for(events.__anext__(), 15)
    assert isinstance(event, KeyChanged)
    assert event.key.endswith("root-coord/privilege-group/after")
    await events.aclose()
