"""The credential store against a real etcd: records, revisions, CAS, delete, watch, faults."""

from __future__ import annotations

import asyncio
import time

import pytest

from milvus_auth.core import CredentialRecord, KeyLayout, LayoutName, UserExists, hash_password
from milvus_auth.store import (
    ClaimStore,
    CredentialStore,
    Endpoint,
    EtcdSettings,
    EtcdUnavailable,
    RevisionConflict,
    UserChanged,
    UserDeleted,
    WatchLost,
    WatchRestored,
    watch_users,
)
from milvus_auth.store.claims import Claim, Origin
from tests.harness.processes import EtcdServer, free_port

HASH = "$2a$04$" + "a" * 53


async def test_create_writes_milvus_bytes(store: CredentialStore, meta_root: str) -> None:
    await store.create(CredentialRecord("alice", HASH))
    raw = await store.connection.call(
        lambda c: c.get(f"{meta_root}/root-coord/credential/users/alice".encode())
    )
    assert raw.value == ('{"encrypted_password":"' + HASH + '"}').encode()


async def test_create_twice_is_user_exists(store: CredentialStore) -> None:
    await store.create(CredentialRecord("alice", HASH))
    with pytest.raises(UserExists, match="user already exists: alice"):
        await store.create(CredentialRecord("alice", HASH))


async def test_get_and_list(store: CredentialStore) -> None:
    assert await store.get("bob") is None
    revision = await store.create(CredentialRecord("bob", HASH))
    await store.create(CredentialRecord("alice", HASH))
    stored = await store.get("bob")
    assert stored is not None
    assert stored.mod_revision == revision
    assert stored.record.encrypted_password == HASH
    assert await store.list_usernames() == ["alice", "bob"]


async def test_update_is_compare_and_swap(store: CredentialStore) -> None:
    first = await store.create(CredentialRecord("alice", HASH))
    second = await store.update(CredentialRecord("alice", HASH[:-1] + "b"), expected_revision=first)
    assert second > first
    with pytest.raises(RevisionConflict):
        await store.update(CredentialRecord("alice", HASH), expected_revision=first)
    stored = await store.get("alice")
    assert stored is not None
    assert stored.record.encrypted_password.endswith("b")


async def test_update_keeps_unknown_fields(store: CredentialStore, meta_root: str) -> None:
    key = f"{meta_root}/root-coord/credential/users/carol".encode()
    await store.connection.call(
        lambda c: c.put(key, b'{"encrypted_password":"x","time_tick":42,"description":"d"}')
    )
    stored = await store.get("carol")
    assert stored is not None
    await store.update(stored.record.with_password(HASH), expected_revision=stored.mod_revision)
    raw = await store.connection.call(lambda c: c.get(key))
    expected = '{"encrypted_password":"' + HASH + '","time_tick":42,"description":"d"}'
    assert raw.value == expected.encode()


async def test_delete_absent_is_success_and_mappings_go(
    store: CredentialStore, meta_root: str
) -> None:
    assert await store.delete("nobody") is False
    await store.create(CredentialRecord("alice", HASH))
    mapping = f"{meta_root}/root-coord/credential/user-role-mapping/alice/admin".encode()
    other = f"{meta_root}/root-coord/credential/user-role-mapping/alice2/admin".encode()
    await store.connection.call(lambda c: c.put(mapping, b""))
    await store.connection.call(lambda c: c.put(other, b""))
    assert await store.delete("alice") is True
    assert await store.get("alice") is None
    assert await store.connection.call(lambda c: c.get(mapping)) is None
    assert await store.connection.call(lambda c: c.get(other)) is not None


async def test_delete_with_stale_revision_conflicts(store: CredentialStore) -> None:
    first = await store.create(CredentialRecord("alice", HASH))
    await store.update(CredentialRecord("alice", HASH), expected_revision=first)
    with pytest.raises(RevisionConflict):
        await store.delete("alice", expected_revision=first)
    assert await store.get("alice") is not None


async def test_mep27_layout(etcd_settings: EtcdSettings, meta_root: str) -> None:
    layout = KeyLayout(LayoutName.MEP27, meta_root)
    async with CredentialStore(etcd_settings, layout) as store:
        await store.create(CredentialRecord("alice", HASH))
        raw = await store.connection.call(
            lambda c: c.get(f"{meta_root}/credentials/users/alice".encode())
        )
        assert raw.value == ('{"password":"' + HASH + '"}').encode()
        assert await store.list_usernames() == ["alice"]


async def test_real_hash_round_trip(store: CredentialStore) -> None:
    await store.create(CredentialRecord("alice", hash_password("secret1", cost=4)))
    stored = await store.get("alice")
    assert stored is not None
    assert stored.record.encrypted_password.startswith("$2a$04$")


async def test_unreachable_etcd_fails_fast_with_typed_error(layout: KeyLayout) -> None:
    settings = EtcdSettings(endpoints=(Endpoint("127.0.0.1", free_port()),), timeout=1.0)
    async with CredentialStore(settings, layout) as store:
        started = time.monotonic()
        with pytest.raises(EtcdUnavailable, match="is unavailable"):
            await store.get("alice")
        assert time.monotonic() - started < 3.0


async def test_fails_over_to_the_next_member(etcd: EtcdServer, layout: KeyLayout) -> None:
    dead = Endpoint("127.0.0.1", free_port())
    settings = EtcdSettings(endpoints=(dead, Endpoint.parse(etcd.endpoint)), timeout=1.0)
    async with CredentialStore(settings, layout) as store:
        with pytest.raises(EtcdUnavailable):
            await store.get("alice")
        assert await store.get("alice") is None


async def test_claims_first_owner_wins(store: CredentialStore, meta_root: str) -> None:
    claims = ClaimStore(store.connection, meta_root)
    first = Claim("ns/a", Origin.ADOPTED)
    assert await claims.claim("alice", first) == first
    assert await claims.claim("alice", Claim("ns/b")) == first
    await claims.release("alice", "ns/b")
    assert await claims.get("alice") == first
    await claims.release("alice", "ns/a")
    assert await claims.get("alice") is None


async def test_a_legacy_plain_owner_claim_reads_as_created(
    store: CredentialStore, meta_root: str
) -> None:
    claims = ClaimStore(store.connection, meta_root)
    key = f"{claims.prefix}bob".encode()
    await store.connection.call(lambda c: c.put(key, b"ns/old"))
    assert await claims.get("bob") == Claim("ns/old", Origin.CREATED)
    assert await claims.claim("bob", Claim("ns/new")) == Claim("ns/old", Origin.CREATED)
    await claims.release("bob", "ns/old")
    assert await claims.get("bob") is None


async def _next(events: object, within: float = 15.0) -> object:
    return await asyncio.wait_for(events.__anext__(), within)  # type: ignore[attr-defined]


async def test_watch_reports_changes_and_deletes(store: CredentialStore) -> None:
    events = watch_users(store)
    first = asyncio.ensure_future(_next(events))
    await asyncio.sleep(0.3)
    revision = await store.create(CredentialRecord("alice", HASH))
    assert await first == UserChanged("alice", revision)
    await store.delete("alice")
    deleted = await _next(events)
    assert isinstance(deleted, UserDeleted)
    assert deleted.username == "alice"
    await events.aclose()


async def test_watch_survives_etcd_restart(etcd: EtcdServer, store: CredentialStore) -> None:
    events = watch_users(store, retry_delay=0.1, max_retry_delay=0.5)
    pending = asyncio.ensure_future(_next(events))
    await asyncio.sleep(0.3)
    etcd.stop()
    assert await pending == WatchLost()
    restored = asyncio.ensure_future(_next(events, within=30))
    await asyncio.sleep(0.5)
    etcd.start()
    assert await restored == WatchRestored(missed=False)
    revision = await store.create(CredentialRecord("alice", HASH))
    assert await _next(events) == UserChanged("alice", revision)
    await events.aclose()
