"""MilvusAPIKey end to end: the operator, two real proxy processes in front of milvus-lite, and
pymilvus with `token=` the key from the Secret. Revocation and rotation are observed on the
proxies themselves; the fan-out is the operator's real one, to the proxies' internal port.
The proxies' own logs are checked for keys by their own tests (tests/integration)."""

from __future__ import annotations

import asyncio
import base64
import time

import grpc
import pytest
from pymilvus import MilvusClient

from milvus_auth.store import ApiKeyStore
from tests.harness.milvus import MilvusLite
from tests.harness.processes import free_port
from tests.harness.proxy import ProxyProcess
from tests.operator.cluster import SLICE_CONTROLLER, Cluster, eventually
from tests.operator.conftest import PROXY_SERVICE, TOKEN, StartOperator
from tests.operator.test_apikeys import key_in_secret, keys, no_key_published, owned

__all__ = ["keys", "no_key_published"]
GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
REVOKED_WITHIN = 2.5
COLLECTION = "my_cloud_collection"
READER = {  # DescribeCollection is a Global privilege; Query makes the collection visible
    "roleName": "reader",
    "grants": [
        {
            "privileges": ["DescribeCollection", "Query"],
            "database": "default",
            "collection": COLLECTION,
        }
    ],
}


@pytest.fixture(autouse=True)
def cloud_collection(milvus: MilvusLite) -> None:
    """The seed example's collection, made on the (shared) upstream directly."""
    client = MilvusClient(uri=f"http://{milvus.endpoint}", timeout=10)
    try:
        if not client.has_collection(COLLECTION):
            client.create_collection(COLLECTION, dimension=2)
    finally:
        client.close()


def _accepts(proxy: ProxyProcess, token: str) -> bool:
    """Whether the proxy lets one call through with `token` as the API key."""
    header = base64.b64encode(token.encode()).decode()
    code = grpc.StatusCode.OK
    with grpc.insecure_channel(proxy.address) as channel:
        try:
            channel.unary_unary(GET_VERSION)(b"", metadata=[("authorization", header)], timeout=5)
        except grpc.RpcError as error:
            code = error.code()
    assert code in {grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED}, code
    return code is grpc.StatusCode.OK


async def accepted(proxies: list[ProxyProcess], token: str) -> list[bool]:
    """Whether each proxy accepts the key (in threads: kmock serves on this loop)."""
    return list(await asyncio.gather(*(asyncio.to_thread(_accepts, p, token) for p in proxies)))


async def ready_key(cluster: Cluster, spec: dict[str, object]) -> str:
    """MilvusUser etl bound to role `reader` (describe and query the seed's collection) and
    a MilvusAPIKey for it, Ready; the token from its Secret."""
    await cluster.create_role("reader", READER)
    await cluster.create_user("etl-user", {"username": "etl", "roles": ["reader"]})
    await eventually(lambda: cluster.reason("etl-user") == "Applied", within=30)
    await cluster.create_key("etl", {"username": "etl", **spec})
    await eventually(lambda: cluster.key_reason("etl") == "Applied", within=30)
    return key_in_secret(cluster).token


def _seed_example(proxy: ProxyProcess, token: str) -> bool:
    """The seed's API-key example: `MilvusClient(uri=..., token=API_KEY)`, `has_collection`;
    the key's user may describe the collection (role reader), nothing more."""
    client = MilvusClient(uri=proxy.uri, token=token, timeout=10)
    try:
        found = bool(client.has_collection(collection_name=COLLECTION))
        with pytest.raises(grpc.RpcError) as denied:
            client.drop_collection(COLLECTION)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "permission deny to etl" in str(denied.value.details())
        return found
    finally:
        client.close()


async def test_pymilvus_connects_with_the_key_from_the_secret(
    cluster: Cluster, proxies: list[ProxyProcess], start_operator: StartOperator
) -> None:
    await start_operator(internal_token=TOKEN)
    token = await ready_key(cluster, {})
    assert cluster.key_status("etl")["proxies"] == {"updated": 2, "total": 2, "summary": "2/2"}
    for proxy in proxies:
        assert await asyncio.to_thread(_seed_example, proxy, token) is True
    assert [p.bcrypt_runs() for p in proxies] == [0, 0]  # a key never costs a bcrypt


async def test_deleting_the_resource_revokes_on_both_proxies_before_it_is_gone(
    cluster: Cluster, proxies: list[ProxyProcess], start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(internal_token=TOKEN)
    token = await ready_key(cluster, {})
    assert await accepted(proxies, token) == [True, True]  # cached on both now

    started = time.monotonic()
    await cluster.delete_key("etl")
    refused_after = None
    while cluster.key("etl") is not None or refused_after is None:
        refused = await accepted(proxies, token) == [False, False]
        if refused and refused_after is None:
            refused_after = time.monotonic() - started
        # The finalizer goes only once every proxy confirmed: never while one still accepts.
        assert cluster.key("etl") is not None or refused_after is not None
        assert time.monotonic() - started < 20, "the resource was never released"
    assert refused_after is not None
    # The "within one second", with room for this poll loop (two fresh channels per
    # round) on a loaded CI machine; typical runs see well under a second.
    assert refused_after < REVOKED_WITHIN
    assert await owned(keys) == {}


async def test_deletion_holds_the_finalizer_while_a_proxy_has_not_confirmed(
    cluster: Cluster, proxies: list[ProxyProcess], start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(internal_token=TOKEN)
    token = await ready_key(cluster, {})
    cluster.add_slice("dead", PROXY_SERVICE, "127.0.0.1", free_port(), managed_by=SLICE_CONTROLLER)

    await cluster.delete_key("etl")
    await eventually(lambda: cluster.key_reason("etl") == "ProxiesPending", within=10)
    assert await owned(keys) == {}  # revoked in etcd first
    assert await accepted(proxies, token) == [False, False]
    assert cluster.key_status("etl")["proxies"]["summary"] == "2/3"
    assert cluster.key("etl") is not None

    cluster.set_proxies(PROXY_SERVICE, [("127.0.0.1", p.internal_port) for p in proxies])
    await eventually(lambda: cluster.key("etl") is None, within=20, what="finalizer released")


async def test_rotation_both_keys_work_during_the_grace_period_then_only_the_new_one(
    cluster: Cluster, proxies: list[ProxyProcess], start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(internal_token=TOKEN)
    old = await ready_key(cluster, {"rotationGracePeriod": "4s"})
    assert await accepted(proxies, old) == [True, True]

    await cluster.patch_key("etl", {"metadata": {"generation": 2}, "spec": {"rotation": "2"}})
    await eventually(lambda: key_in_secret(cluster).token != old, what="the new key")
    new = key_in_secret(cluster).token
    await eventually(lambda: cluster.key_status("etl").get("previousKeyExpiresAt") is not None)
    assert await accepted(proxies, new) == [True, True]
    assert await accepted(proxies, old) == [True, True]  # in its grace period

    async def old_refused() -> bool:
        return await accepted(proxies, old) == [False, False]

    await eventually(old_refused, within=15, what="the old key refused on every proxy")
    assert await accepted(proxies, new) == [True, True]

    async def old_removed() -> bool:  # proxies refuse it at its grace end, then it is removed
        return set(await owned(keys)) == {key_in_secret(cluster).key_id}

    await eventually(old_removed, within=10, what="the old record removed")
    for proxy in proxies:
        assert await asyncio.to_thread(_seed_example, proxy, new) is True
