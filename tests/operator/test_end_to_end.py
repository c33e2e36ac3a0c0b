"""The operator with two real proxy processes in front of milvus-lite, logging in with pymilvus."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.core import verify_password
from milvus_auth.store import CredentialStore
from tests.harness.proxy import ProxyProcess
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import TOKEN, StartOperator

OLD = "old-password-1"
NEW = "new-password-2"


def _login(proxy: ProxyProcess, user: str, password: str) -> bool:
    try:
        client = MilvusClient(uri=proxy.uri, user=user, password=password, timeout=5)
    except (MilvusException, grpc.RpcError):
        return False
    try:
        client.list_collections()
    except (MilvusException, grpc.RpcError):
        return False
    finally:
        client.close()
    return True


async def logins(proxies: list[ProxyProcess], user: str, password: str) -> list[bool]:
    """Whether each proxy accepts the login (run in threads: kmock serves on this loop)."""
    return list(
        await asyncio.gather(*(asyncio.to_thread(_login, p, user, password) for p in proxies))
    )


async def test_create_then_both_proxies_accept_the_password(
    cluster: Cluster,
    proxies: list[ProxyProcess],
    start_operator: StartOperator,
    store: CredentialStore,
    meta_root: str,
) -> None:
    await start_operator(internal_token=TOKEN)
    await cluster.put_secret("nina-password", OLD)
    await cluster.create_user(
        "nina", {"username": "nina", "passwordSecretRef": {"name": "nina-password"}}
    )
    await eventually(lambda: cluster.reason("nina") == "Applied", within=20)

    raw = await store.connection.call(
        lambda c: c.get(f"{meta_root}/root-coord/credential/users/nina".encode())
    )
    assert raw.value.startswith(b'{"encrypted_password":"$2a$04$')
    assert raw.value.endswith(b'"}')
    assert await logins(proxies, "nina", OLD) == [True, True]
    # Cache hits: the operator pre-warmed both proxies, so neither ran bcrypt for the login.
    assert [p.bcrypt_runs() for p in proxies] == [0, 0]
    assert await logins(proxies, "nina", NEW) == [False, False]
    status = cluster.status("nina")
    assert status["proxies"] == {"updated": 2, "total": 2, "summary": "2/2"}
    assert status["observedGeneration"] == 1


async def test_rotation_reaches_both_proxies_within_seconds(
    cluster: Cluster, proxies: list[ProxyProcess], start_operator: StartOperator
) -> None:
    await start_operator(internal_token=TOKEN)
    await cluster.put_secret("omar-password", OLD)
    await cluster.create_user(
        "omar", {"username": "omar", "passwordSecretRef": {"name": "omar-password"}}
    )
    await eventually(lambda: cluster.reason("omar") == "Applied", within=20)
    assert await logins(proxies, "omar", OLD) == [True, True]

    started = asyncio.get_running_loop().time()
    await cluster.put_secret("omar-password", NEW)

    async def rotated() -> bool:
        return await logins(proxies, "omar", OLD) == [False, False]

    await eventually(rotated, within=5)
    assert asyncio.get_running_loop().time() - started < 5
    assert await logins(proxies, "omar", NEW) == [True, True]


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
async def test_deletion_policy_through_the_proxies(
    cluster: Cluster,
    proxies: list[ProxyProcess],
    start_operator: StartOperator,
    store: CredentialStore,
    policy: str,
) -> None:
    await start_operator(internal_token=TOKEN)
    await cluster.put_secret("pia-password", OLD)
    spec = {
        "username": "pia",
        "deletionPolicy": policy,
        "passwordSecretRef": {"name": "pia-password"},
    }
    await cluster.create_user("pia", spec)
    await eventually(lambda: cluster.reason("pia") == "Applied", within=20)
    assert await logins(proxies, "pia", OLD) == [True, True]

    await cluster.delete_user("pia")
    await eventually(lambda: cluster.user("pia") is None, within=20)
    if policy == "Delete":
        assert await store.get("pia") is None
        assert await logins(proxies, "pia", OLD) == [False, False]
    else:
        assert await store.get("pia") is not None
        assert await logins(proxies, "pia", OLD) == [True, True]


async def test_a_proxy_down_during_rotation_is_pending_until_it_is_back(
    cluster: Cluster,
    proxies: list[ProxyProcess],
    start_operator: StartOperator,
    store: CredentialStore,
) -> None:
    await start_operator(internal_token=TOKEN)
    await cluster.put_secret("quinn-password", OLD)
    await cluster.create_user(
        "quinn", {"username": "quinn", "passwordSecretRef": {"name": "quinn-password"}}
    )
    await eventually(lambda: cluster.reason("quinn") == "Applied", within=20)

    proxies[1].stop()
    try:
        await cluster.put_secret("quinn-password", NEW)
        await eventually(lambda: cluster.reason("quinn") == "ProxiesPending", within=20)
        assert cluster.status("quinn")["proxies"] == {"updated": 1, "total": 2, "summary": "1/2"}
        stored = await store.get("quinn")
        assert stored is not None
        assert verify_password(NEW, stored.record.encrypted_password)
        assert await logins(proxies[:1], "quinn", NEW) == [True]
    finally:
        await asyncio.to_thread(proxies[1].start)
    await eventually(lambda: cluster.reason("quinn") == "Applied", within=30)
    assert cluster.status("quinn")["proxies"]["summary"] == "2/2"
    assert await logins(proxies, "quinn", NEW) == [True, True]
    assert await logins(proxies, "quinn", OLD) == [False, False]
