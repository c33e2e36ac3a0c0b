"""Milvus's user limit (`--max-users`) holds when creates race on several proxies and the CLI.

Real etcd, real proxy processes and pymilvus: the limit is checked inside the create's etcd
transaction, so concurrent creates on different proxies cannot pass it together.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.core import CredentialRecord, UserExists, UserLimitReached, hash_password
from milvus_auth.store import CredentialStore, EtcdSettings
from tests.harness.cli import run_cli
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory

LIMIT = 30
LIMIT_TEXT = "unable to add user because the number of users has reached the limit"
PASSWORD = "Racer-password-1"


async def _fill_to(store: CredentialStore, count: int) -> None:
    """Users until etcd holds `count` records (root included), written without a limit."""
    hashed = hash_password(PASSWORD, 4)
    present = len(await store.list_usernames())
    for index in range(count - present):
        await store.create(CredentialRecord(f"filler{index}", hashed))


@pytest.mark.slow
async def test_twenty_concurrent_creates_over_two_proxies_fill_exactly_the_room_left(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
    store: CredentialStore,
) -> None:
    proxies = [
        proxy_factory(
            etcd_endpoint=etcd.endpoint,
            meta_root=meta_root,
            upstream=milvus.endpoint,
            extra_args=["--max-users", str(LIMIT)],
        )
        for _ in range(2)
    ]
    await _fill_to(store, LIMIT - 5)  # root (bootstrapped by the proxies) and the fillers
    clients = [
        MilvusClient(uri=proxies[index % 2].uri, user="root", password=ROOT_PASSWORD, timeout=20)
        for index in range(20)
    ]
    start = threading.Barrier(20)

    def create(index: int) -> MilvusException | None:
        start.wait()
        try:
            clients[index].create_user(f"racer{index}", PASSWORD)
        except MilvusException as error:
            return error
        return None

    try:
        with ThreadPoolExecutor(20) as pool:
            results = await asyncio.to_thread(lambda: list(pool.map(create, range(20))))
    finally:
        for client in clients:
            client.close()

    refused = [error for error in results if error is not None]
    assert len(refused) == 15
    assert {(error.code, error.message) for error in refused} == {(65535, LIMIT_TEXT)}
    usernames = await store.list_usernames()
    assert len(usernames) == LIMIT
    assert len([name for name in usernames if name.startswith("racer")]) == 5


async def test_concurrent_store_creates_never_pass_the_limit(
    etcd_settings: EtcdSettings, store: CredentialStore
) -> None:
    """Ten writers with their own etcd connections race for three free places."""
    await _fill_to(store, 7)
    hashed = hash_password(PASSWORD, 4)
    writers = [CredentialStore(etcd_settings, store.layout) for _ in range(10)]

    async def create(index: int) -> int | BaseException:
        try:
            return await writers[index].create(CredentialRecord(f"w{index}", hashed), max_users=10)
        except UserLimitReached as error:
            return error

    try:
        results = await asyncio.gather(*(create(index) for index in range(10)))
    finally:
        for writer in writers:
            await writer.close()
    assert sum(isinstance(result, int) for result in results) == 3
    assert sum(isinstance(result, UserLimitReached) for result in results) == 7
    assert len(await store.list_usernames()) == 10
    # The name check comes first, as in Milvus: an existing user is "exists", even when full.
    with pytest.raises(UserExists):
        await store.create(CredentialRecord("filler0", hashed), max_users=10)


async def test_a_write_landing_after_the_count_makes_the_create_count_again(
    store: CredentialStore,
) -> None:
    """A user written between the count and the transaction (by anyone, stock Milvus's
    RootCoord included, which keeps no counter) is seen: the create counts again."""
    await _fill_to(store, 4)
    hashed = hash_password(PASSWORD, 4)
    counted = store._users

    async def count_then_someone_writes() -> tuple[list[str], int]:
        result = await counted()
        if "intruder" not in result[0]:
            await store.create(CredentialRecord("intruder", hashed))  # a plain, unlimited put
        return result

    store._users = count_then_someone_writes  # type: ignore[method-assign]
    try:
        with pytest.raises(UserLimitReached):
            await store.create(CredentialRecord("late", hashed), max_users=5)
    finally:
        store._users = counted  # type: ignore[method-assign]
    assert await store.get("late") is None
    assert len(await store.list_usernames()) == 5


def test_the_cli_refuses_a_create_at_the_limit(etcd: EtcdServer, meta_root: str) -> None:
    def create(name: str) -> tuple[int, str]:
        done = run_cli(
            ["users", "create", name, "--password-file", "-"],
            etcd=etcd.endpoint,
            meta_root=meta_root,
            stdin=PASSWORD,
            extra=["--bcrypt-cost", "4", "--max-users", "1"],
        )
        return done.returncode, done.stderr

    assert create("first")[0] == 0
    assert create("second") == (1, f"milvus-auth: {LIMIT_TEXT}\n")
