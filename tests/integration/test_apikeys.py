"""API key records on a real etcd, and `milvus-auth apikeys` as a subprocess."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator

import pytest

from milvus_auth.core import CredentialRecord
from milvus_auth.core.apikeys import ApiKeyRecord, generate_api_key, parse_api_key
from milvus_auth.store import (
    ApiKeyExists,
    ApiKeyStore,
    CredentialStore,
    EtcdSettings,
    KeyChanged,
    RevisionConflict,
    watch_api_keys,
)
from tests.harness.cli import run_cli
from tests.harness.processes import EtcdServer

HASH = "$2a$04$" + "a" * 53


@pytest.fixture
async def keys(etcd_settings: EtcdSettings, meta_root: str) -> AsyncIterator[ApiKeyStore]:
    async with ApiKeyStore(etcd_settings, meta_root) as store:
        yield store


def _record(username: str = "etl", **changes: object) -> tuple[str, ApiKeyRecord]:
    key = generate_api_key()
    fields: dict[str, object] = {"issued_at": 1_700_000_000, **changes}
    return key.token, ApiKeyRecord(key.key_id, username, key.secret_hash, **fields)  # type: ignore[arg-type]


async def test_create_get_list_touch_delete(keys: ApiKeyStore, meta_root: str) -> None:
    token, record = _record(name="nightly")
    revision = await keys.create(record)
    with pytest.raises(ApiKeyExists):
        await keys.create(record)
    stored = await keys.get(record.key_id)
    assert stored is not None
    assert stored.mod_revision == revision
    assert stored.record == record
    assert stored.record.matches(parse_api_key(token))
    assert keys.key_for(record.key_id) == f"{meta_root}/milvus-auth/api-keys/{record.key_id}"
    assert [s.record.key_id for s in await keys.list()] == [record.key_id]
    await keys.touch(stored, 1_700_000_060)
    with pytest.raises(RevisionConflict):
        await keys.touch(stored, 1_700_000_120)  # read before the first touch
    touched = await keys.get(record.key_id)
    assert touched is not None
    assert touched.record.last_used_at == 1_700_000_060
    assert await keys.delete(record.key_id)
    assert not await keys.delete(record.key_id)
    assert await keys.get(record.key_id) is None


async def test_an_unreadable_record_reads_as_absent(keys: ApiKeyStore) -> None:
    _, record = _record()
    await keys.create(record)
    key = keys.key_for("0123456789abcdef").encode()
    await keys.connection.call(lambda c: c.put(key, b"{not json"))
    assert await keys.get("0123456789abcdef") is None
    assert [s.record.key_id for s in await keys.list()] == [record.key_id]


async def test_the_watch_sees_issue_and_revocation(keys: ApiKeyStore) -> None:
    _, record = _record()
    created = await keys.create(record)
    await keys.delete(record.key_id)
    events = watch_api_keys(keys, start_revision=created)
    seen = []
    while len(seen) < 2:
        event = await asyncio.wait_for(events.__anext__(), 15)
        assert isinstance(event, KeyChanged)
        seen.append((keys.id_of(event.key), event.deleted))
    await events.aclose()
    assert seen == [(record.key_id, False), (record.key_id, True)]


def _cli(etcd: EtcdServer, meta_root: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["apikeys", *args], etcd=etcd.endpoint, meta_root=meta_root)


async def test_cli_create_list_revoke(
    etcd: EtcdServer, meta_root: str, store: CredentialStore, keys: ApiKeyStore
) -> None:
    refused = _cli(etcd, meta_root, "create", "--username", "ghost")
    assert refused.returncode == 1
    assert "user not found: ghost" in refused.stderr
    await store.create(CredentialRecord("etl", HASH))
    created = _cli(etcd, meta_root, "create", "--username", "etl", "--expires-after", "1h",
                   "--name", "nightly")  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    key = parse_api_key(token)
    stored = await keys.get(key.key_id)
    assert stored is not None
    assert stored.record.matches(key)
    assert stored.record.expires_at == stored.record.issued_at + 3600

    listed = _cli(etcd, meta_root, "list")
    assert listed.returncode == 0
    assert key.key_id in listed.stdout
    assert "nightly\tetl\t" in listed.stdout
    assert key.secret not in listed.stdout
    assert stored.record.secret_hash not in listed.stdout

    assert _cli(etcd, meta_root, "revoke", key.key_id).returncode == 0
    assert await keys.get(key.key_id) is None
    again = _cli(etcd, meta_root, "revoke", key.key_id)
    assert again.returncode == 1
    assert "API key not found" in again.stderr
    assert _cli(etcd, meta_root, "revoke", "../../x").returncode == 1
    bad = _cli(etcd, meta_root, "create", "--username", "etl", "--expires-after", "forever")
    assert bad.returncode == 1
    assert "720h" in bad.stderr


async def test_cli_says_etcd_is_unavailable(meta_root: str) -> None:
    down = run_cli(["apikeys", "list"], etcd="127.0.0.1:1", meta_root=meta_root)
    assert down.returncode == 2


async def test_update_replaces_a_record_only_if_unchanged_since_read(keys: ApiKeyStore) -> None:
    _, record = _record(expires_at=1_800_000_000)
    await keys.create(record)
    stored = await keys.get(record.key_id)
    assert stored is not None
    retired = dataclasses.replace(record, expires_at=1_700_003_600)  # a rotation's grace end
    await keys.update(stored, retired)
    with pytest.raises(RevisionConflict):
        await keys.update(stored, record)  # read before the first update: never undone
    updated = await keys.get(record.key_id)
    assert updated is not None
    assert updated.record == retired
