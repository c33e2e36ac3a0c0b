"""Root bootstrap against a real etcd: create if absent, never overwrite, refuse to guess."""

from __future__ import annotations

import asyncio
import logging

import pytest

from milvus_auth.core import CredentialRecord, hash_password, verify_password
from milvus_auth.proxy.bootstrap import BootstrapError, bootstrap_root
from milvus_auth.store import CredentialStore


async def _root_hash(store: CredentialStore) -> str | None:
    stored = await store.get("root")
    return None if stored is None else stored.record.encrypted_password


async def test_creates_root_from_the_password(
    store: CredentialStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await bootstrap_root(store, password="RootSecret9", auth_enabled=True, bcrypt_cost=4)
    hashed = await _root_hash(store)
    assert hashed is not None
    assert hashed.startswith("$2a$04$")
    assert verify_password("RootSecret9", hashed)
    assert "created root" in caplog.text
    assert "RootSecret9" not in caplog.text
    assert hashed not in caplog.text


async def test_never_overwrites_an_existing_root(store: CredentialStore) -> None:
    await store.create(CredentialRecord("root", hash_password("Original1", 4)))
    before = await store.get("root")
    await bootstrap_root(store, password="Different1", auth_enabled=True, bcrypt_cost=4)
    after = await store.get("root")
    assert before is not None
    assert after is not None
    assert after.mod_revision == before.mod_revision
    assert verify_password("Original1", after.record.encrypted_password)


async def test_existing_root_needs_no_password(store: CredentialStore) -> None:
    await store.create(CredentialRecord("root", hash_password("Original1", 4)))
    await bootstrap_root(store, password=None, auth_enabled=True, bcrypt_cost=4)
    assert await _root_hash(store) is not None


async def test_auth_on_without_root_or_password_refuses_to_start(store: CredentialStore) -> None:
    with pytest.raises(BootstrapError) as refused:
        await bootstrap_root(store, password=None, auth_enabled=True, bcrypt_cost=4)
    message = str(refused.value)
    assert "--root-password-file" in message
    assert "MILVUS_AUTH_ROOT_PASSWORD_FILE" in message
    assert await store.list_usernames() == []


async def test_auth_off_without_root_or_password_starts(store: CredentialStore) -> None:
    await bootstrap_root(store, password=None, auth_enabled=False, bcrypt_cost=4)
    assert await store.list_usernames() == []


@pytest.mark.parametrize("password", ["short", "x" * 73])
async def test_unusable_password_is_refused(store: CredentialStore, password: str) -> None:
    with pytest.raises(BootstrapError, match="invalid password length") as refused:
        await bootstrap_root(store, password=password, auth_enabled=True, bcrypt_cost=4)
    assert password not in str(refused.value)
    assert await store.list_usernames() == []


async def test_concurrent_bootstraps_create_root_once(store: CredentialStore) -> None:
    passwords = [f"Password{i}" for i in range(5)]
    await asyncio.gather(
        *(
            bootstrap_root(store, password=password, auth_enabled=True, bcrypt_cost=4)
            for password in passwords
        )
    )
    hashed = await _root_hash(store)
    assert hashed is not None
    assert sum(verify_password(password, hashed) for password in passwords) == 1
    assert await store.list_usernames() == ["root"]
