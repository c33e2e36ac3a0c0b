"""Issue 10's attacks on the operator, through kmock and a real etcd: each one now fails.

A tenant who may create MilvusUsers in an unprivileged namespace tries to take over a user
made with pymilvus and root; the operator lists Secrets and EndpointSlices; a forged
EndpointSlice tries to receive the cache calls; an invalid Secret's status tries to tell the
password's length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import kmock
import pytest
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core import CredentialRecord, hash_password, verify_password
from milvus_auth.protos import proxy_pb2_grpc
from milvus_auth.store import CredentialStore
from milvus_auth.store.claims import Claim, ClaimStore, Origin
from tests.operator.cluster import NAMESPACE, SLICE_CONTROLLER, Cluster, eventually
from tests.operator.conftest import PROXY_SERVICE, FakeNotifier, StartOperator

ATTACKER = "attacker-password-1"
OWN = "own-password-1"


async def _raw(store: CredentialStore, meta_root: str, username: str) -> tuple[bytes, int]:
    key = f"{meta_root}/root-coord/credential/users/{username}".encode()
    found = await store.connection.call(lambda c: c.get(key))
    assert found is not None
    return found.value, found.mod_revision


def _events(cluster: Cluster, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events() if e.get("reason") == reason]


async def test_a_tenant_cannot_take_over_an_existing_user_or_root(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, meta_root: str
) -> None:
    for username in ("bob", "root"):  # made with pymilvus and by the root bootstrap
        await store.create(CredentialRecord(username, hash_password(OWN, 4)))
    before = {u: await _raw(store, meta_root, u) for u in ("bob", "root")}
    notifier = FakeNotifier()
    await start_operator(notifier=notifier, privileged_namespaces=frozenset({"ops"}))
    await cluster.put_secret("loot", ATTACKER)
    await cluster.create_user(
        "steal-bob", {"username": "bob", "passwordSecretRef": {"name": "loot"}}
    )
    await cluster.create_user(
        "steal-root",
        {"username": "root", "allowRoot": True, "passwordSecretRef": {"name": "loot"}},
    )

    for name in ("steal-bob", "steal-root"):
        await eventually(lambda n=name: cluster.reason(n) == "NotPermitted", what=name)  # type: ignore[misc]
        assert cluster.condition(name, "Stalled")["status"] == "True"
        assert cluster.condition(name)["status"] == "False"
    assert (
        "privileged namespace (--privileged-namespaces" in cluster.condition("steal-bob")["message"]
    )
    assert (
        "manage a Milvus user that the operator did not create"
        in cluster.condition("steal-bob")["message"]
    )
    assert "set spec.allowRoot" in cluster.condition("steal-root")["message"]
    # Events are posted apart from the status patch: wait for them.
    await eventually(lambda: len(_events(cluster, "NotPermitted")) == 2, what="two Warnings")
    claims = ClaimStore(store.connection, meta_root)
    for username in ("bob", "root"):
        assert await _raw(store, meta_root, username) == before[username], "record unchanged"
        assert await claims.get(username) is None, "no claim taken"
    assert notifier.updates == []

    await cluster.delete_user("steal-bob")
    await eventually(lambda: cluster.user("steal-bob") is None)
    assert await _raw(store, meta_root, "bob") == before["bob"]
    assert notifier.invalidations == []


async def test_a_privileged_namespace_adopts_and_deleting_keeps_the_adopted_user(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, meta_root: str
) -> None:
    await store.create(CredentialRecord("bob", hash_password(OWN, 4)))
    notifier = FakeNotifier()
    await start_operator(notifier=notifier, privileged_namespaces=frozenset({NAMESPACE}))
    await cluster.put_secret("bob-password", "managed-password-2")
    await cluster.create_user(
        "bob", {"username": "bob", "passwordSecretRef": {"name": "bob-password"}}
    )
    await eventually(lambda: cluster.reason("bob") == "Applied")
    stored = await store.get("bob")
    assert stored is not None
    assert verify_password("managed-password-2", stored.record.encrypted_password)
    claims = ClaimStore(store.connection, meta_root)
    assert await claims.get("bob") == Claim(f"{NAMESPACE}/bob", Origin.ADOPTED)

    await cluster.delete_user("bob")  # deletionPolicy Delete, the default
    await eventually(lambda: cluster.user("bob") is None)
    assert await store.get("bob") is not None, "an adopted user is never deleted"
    assert notifier.invalidations == []
    assert await claims.get("bob") is None, "the claim is released"
    await eventually(lambda: bool(_events(cluster, "Retained")), what="a Retained event")
    assert "existed before the operator adopted it" in _events(cluster, "Retained")[-1]


async def test_a_user_the_operator_created_is_still_deleted(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, meta_root: str
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("cleo-password", OWN)
    await cluster.create_user(
        "cleo", {"username": "cleo", "passwordSecretRef": {"name": "cleo-password"}}
    )
    await eventually(lambda: cluster.reason("cleo") == "Applied")
    claims = ClaimStore(store.connection, meta_root)
    assert await claims.get("cleo") == Claim(f"{NAMESPACE}/cleo", Origin.CREATED)
    await cluster.delete_user("cleo")
    await eventually(lambda: cluster.user("cleo") is None)
    assert await store.get("cleo") is None


def _requests(api: kmock.KubernetesEmulator, resource: str) -> list[Any]:
    wanted = kmock.resource(resource)
    return [
        request
        for request in list(api)
        if request.resource == wanted and request.action in {kmock.action.LIST, kmock.action.WATCH}
    ]


async def test_secrets_are_listed_and_watched_by_label_on_the_server(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("dora-password", OWN)
    await cluster.create_user(
        "dora", {"username": "dora", "passwordSecretRef": {"name": "dora-password"}}
    )
    await eventually(lambda: cluster.reason("dora") == "Applied")
    secret_reads = _requests(api, "v1/secrets")
    assert {r.action for r in secret_reads} == {kmock.action.LIST, kmock.action.WATCH}
    for request in secret_reads:
        assert request.params.get("labelSelector") == "auth.milvus.io/watch=true"
    users = _requests(api, "auth.milvus.io/v1alpha1/milvususers")
    assert users, "MilvusUsers are watched"
    assert all("labelSelector" not in r.params for r in users)


class _Cache(proxy_pb2_grpc.ProxyServicer):
    """A proxy's internal cache service that records who called it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def UpdateCredentialCache(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls.append(request.username)
        return common_pb2.Status()

    async def InvalidateCredentialCache(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        self.calls.append(request.username)
        return common_pb2.Status()


@pytest.fixture
async def caches() -> AsyncIterator[list[tuple[_Cache, int]]]:
    """Two in-process cache services on loopback ports: the real proxy and the forger's."""
    started = []
    for _ in range(2):
        cache = _Cache()
        server = grpc.aio.server()
        proxy_pb2_grpc.add_ProxyServicer_to_server(cache, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.append((server, cache, port))
    yield [(cache, port) for _, cache, port in started]
    for server, _, _ in started:
        await server.stop(None)


async def test_a_forged_endpointslice_gets_no_cache_call(
    api: kmock.KubernetesEmulator,
    cluster: Cluster,
    start_operator: StartOperator,
    caches: list[tuple[_Cache, int]],
) -> None:
    (real, real_port), (forger, forged_port) = caches
    cluster.add_slice("proxy-a", PROXY_SERVICE, "127.0.0.1", real_port, managed_by=SLICE_CONTROLLER)
    # Same Service name label; no managed-by label, or another manager's.
    cluster.add_slice("forged-1", PROXY_SERVICE, "127.0.0.1", forged_port, managed_by=None)
    cluster.add_slice(
        "forged-2", PROXY_SERVICE, "127.0.0.1", forged_port, managed_by="attacker.example.com"
    )
    await start_operator(internal_token="internal-token-1")  # the real ProxyNotifier
    await cluster.put_secret("eve-password", OWN)
    await cluster.create_user(
        "eve", {"username": "eve", "passwordSecretRef": {"name": "eve-password"}}
    )
    await eventually(lambda: cluster.reason("eve") == "Applied")
    assert cluster.status("eve")["proxies"]["summary"] == "1/1"
    assert real.calls == ["eve"]
    assert forger.calls == []
    slice_lists = _requests(api, "discovery.k8s.io/v1/endpointslices")
    assert slice_lists
    for request in slice_lists:
        assert request.params["labelSelector"] == (
            f"kubernetes.io/service-name={PROXY_SERVICE},"
            "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
        )


async def test_an_invalid_secret_never_tells_the_passwords_length(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("short-password", "abc")
    await cluster.create_user(
        "fay", {"username": "fay", "passwordSecretRef": {"name": "short-password"}}
    )
    await eventually(lambda: cluster.reason("fay") == "InvalidSecret")
    message = cluster.condition("fay")["message"]
    assert message == "Secret short-password key password: invalid length"
    await eventually(lambda: _events(cluster, "InvalidSecret") == [message], what="the event")
    assert await store.get("fay") is None
