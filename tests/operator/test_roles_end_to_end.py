"""Declared access through two real proxies: the operator (kmock + real etcd) writes a
MilvusRole and a MilvusUser bound to it, both proxies (milvus-lite upstream) enforce it for a
real pymilvus client, and a grant removed from the spec is refused by both once Ready.

The role also grants a custom privilege group that root made with pymilvus through the proxy's
own RBAC RPCs: the operator stores the group's grant as Milvus does and the proxies expand it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from pymilvus import MilvusClient

from milvus_auth.core import KeyLayout
from milvus_auth.core.grants import RbacLayout
from milvus_auth.store import EtcdSettings, PolicyStore
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import TOKEN, StartOperator

PASSWORD = "Reporting-pass-1"
DENIED = "denied"
ALLOWED = "allowed"


@dataclass(frozen=True)
class Names:
    """One test's collections and group (milvus-lite is shared by the session)."""

    books: str
    other: str
    group: str


@pytest.fixture
def names(proxies: list[ProxyProcess]) -> Iterator[Names]:
    """Two collections with rows, and a custom group `ingest_*` = {Insert, Delete}, made by
    root with pymilvus through the first proxy (its RBAC RPCs write etcd as RootCoord would)."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # denials are the point here
    suffix = uuid.uuid4().hex[:8]
    made = Names(f"books_{suffix}", f"other_{suffix}", f"ingest_{suffix}")
    root = MilvusClient(uri=proxies[0].uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        for collection in (made.books, made.other):
            root.create_collection(collection, dimension=2)
            root.insert(collection, [{"id": i, "vector": [0.1 * i, 0.2]} for i in range(3)])
        root.create_privilege_group(made.group)
        root.add_privileges_to_group(made.group, ["Insert", "Delete"])
        yield made
    finally:
        for collection in (made.books, made.other):
            root.drop_collection(collection)
        root.close()


def outcome(call: Callable[[], object]) -> str:
    """`allowed` when the call went through and milvus-lite answered it, `denied` on the
    proxy's PERMISSION_DENIED; anything else fails the test with its error."""
    try:
        call()
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:  # type: ignore[attr-defined]
            return DENIED
        raise
    return ALLOWED


def _index(client: MilvusClient) -> object:
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    return params


Call = Callable[[MilvusClient, Names], object]
CALLS: dict[str, Call] = {
    "search": lambda c, n: c.search(n.books, [[0.1, 0.2]], limit=1),
    "query": lambda c, n: c.query(n.books, filter="id >= 0", limit=1),
    "describe": lambda c, n: c.describe_collection(n.books),
    "insert": lambda c, n: c.insert(n.books, [{"id": 10, "vector": [0.3, 0.4]}]),
    "delete": lambda c, n: c.delete(n.books, ids=[10]),
    "drop": lambda c, n: c.drop_collection(n.books),
    "create": lambda c, n: c.create_collection(f"{n.books}_new", dimension=2),
    "create_index": lambda c, n: c.create_index(n.books, _index(c)),
    "search_other": lambda c, n: c.search(n.other, [[0.1, 0.2]], limit=1),
    "query_other": lambda c, n: c.query(n.other, filter="id >= 0", limit=1),
    "create_user": lambda c, n: c.create_user(f"made_{n.books}", PASSWORD),
    "create_role": lambda c, n: c.create_role(f"made_{n.books}"),
    "bind_admin": lambda c, _: c.grant_role("reporting", "admin"),
}


def expect(allowed: set[str]) -> dict[str, str]:
    """Every call allowed if named, else denied."""
    return {name: ALLOWED if name in allowed else DENIED for name in CALLS}


async def outcomes(clients: list[MilvusClient], names: Names) -> list[dict[str, str]]:
    """What each proxy did with every call (threads: kmock serves on this loop)."""

    def run(client: MilvusClient) -> dict[str, str]:
        return {name: outcome(lambda c=call: c(client, names)) for name, call in CALLS.items()}

    return list(await asyncio.gather(*(asyncio.to_thread(run, c) for c in clients)))


@pytest.fixture
def clients() -> Iterator[list[MilvusClient]]:
    """Closes the pymilvus clients a test opens (once the user is Ready: a client logs in as
    it is made)."""
    made: list[MilvusClient] = []
    yield made
    for client in made:
        client.close()


async def test_declared_access_is_enforced_by_both_proxies_and_revoked_within_a_second(
    cluster: Cluster,
    proxies: list[ProxyProcess],
    names: Names,
    clients: list[MilvusClient],
    start_operator: StartOperator,
    etcd_settings: EtcdSettings,
    layout: KeyLayout,
) -> None:
    await start_operator(internal_token=TOKEN)
    read = {"privileges": ["Search", "Query", "DescribeCollection"], "collection": names.books}
    ingest = {"privileges": [names.group], "collection": names.books}
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [read, ingest]})
    await cluster.put_secret("reporting-password", PASSWORD)
    user = {
        "username": "reporting",
        "passwordSecretRef": {"name": "reporting-password"},
        "roles": ["docs_reader"],
    }
    await cluster.create_user("reporting", user)
    await eventually(lambda: cluster.role_reason("reader") == "Applied", within=30)
    await eventually(lambda: cluster.reason("reporting") == "Applied", within=30)
    assert cluster.role_status("reader")["proxies"]["summary"] == "2/2"
    assert cluster.role_status("reader")["grants"] == 4

    # The group's grant is stored under the group's name, as RootCoord stores it.
    async with PolicyStore(etcd_settings, RbacLayout(layout.meta_root)) as policy:
        stored = {g.privilege for g in (await policy.snapshot()).grants_of("docs_reader")}
    assert f"PrivilegeGroup{names.group}" in stored

    clients += [
        await asyncio.to_thread(
            MilvusClient, uri=p.uri, user="reporting", password=PASSWORD, timeout=10
        )
        for p in proxies
    ]
    granted = {"search", "query", "describe", "insert", "delete"}
    assert await outcomes(clients, names) == [expect(granted)] * 2

    # Query and the group leave the spec: refused on both proxies within a second of Ready.
    await cluster.patch_role(
        "reader",
        {"metadata": {"generation": 2}, "spec": {"grants": [{**read, "privileges": ["Search"]}]}},
    )
    await eventually(lambda: cluster.role_status("reader").get("observedGeneration") == 2)
    await eventually(lambda: cluster.role_reason("reader") == "Applied", within=30)
    narrowed = {"search"}

    async def revoked() -> bool:
        return await outcomes(clients, names) == [expect(narrowed)] * 2

    await eventually(revoked, within=1.0, what="both proxies refuse the removed grants")
    assert cluster.role_status("reader")["grants"] == 1
