"""pymilvus end to end through the proxy to milvus-lite: the data path a user actually takes."""

from __future__ import annotations

import uuid

import grpc
import pytest
from pymilvus import MilvusClient

from milvus_auth.store import EtcdSettings
from tests.harness.calls import search_code
from tests.harness.processes import wait_until
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess
from tests.harness.rbac import Rbac

USER_PASSWORD = "Carol:Pass-1"  # a colon: Milvus splits the header at the FIRST colon


@pytest.fixture
def carol(proxy: ProxyProcess, etcd_settings: EtcdSettings, meta_root: str) -> None:
    """A user created by root through the proxy (pymilvus' create_user), bound in etcd to a
    role that may create, use and drop collections in `default` (the proxy's watch sees it)."""
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    root.create_user("carol", USER_PASSWORD)
    root.close()
    rbac = Rbac(etcd_settings, meta_root)
    rbac.create_role("developer")
    rbac.grant_v2("developer", "DatabaseAdmin")
    rbac.grant_v2("developer", "CollectionAdmin", collection="*")
    rbac.bind("carol", "developer")
    wait_until(
        lambda: (
            search_code(proxy, "carol", USER_PASSWORD, "any") != grpc.StatusCode.PERMISSION_DENIED
        ),
        timeout=10,
        what="carol's role on the proxy",
    )


def exercise(client: MilvusClient) -> None:
    """Create a collection, insert, search, query and drop it."""
    name = f"c_{uuid.uuid4().hex[:10]}"
    client.create_collection(name, dimension=4)
    try:
        rows = [{"id": i, "vector": [float(i), 0.0, 1.0, 0.5]} for i in range(10)]
        assert client.insert(name, rows)["insert_count"] == 10
        hits = client.search(name, data=[[3.0, 0.0, 1.0, 0.5]], limit=3)
        assert hits[0][0]["id"] == 3
        found = client.query(name, filter="id in [1, 2]", output_fields=["id"])
        assert sorted(row["id"] for row in found) == [1, 2]
        assert name in client.list_collections()
    finally:
        client.drop_collection(name)
    assert name not in client.list_collections()


@pytest.mark.usefixtures("carol")
def test_user_and_password(proxy: ProxyProcess) -> None:
    client = MilvusClient(uri=proxy.uri, user="carol", password=USER_PASSWORD, timeout=10)
    try:
        exercise(client)
    finally:
        client.close()


@pytest.mark.usefixtures("carol")
def test_token(proxy: ProxyProcess) -> None:
    before = proxy.bcrypt_runs()
    client = MilvusClient(uri=proxy.uri, token=f"carol:{USER_PASSWORD}", timeout=10)
    try:
        exercise(client)
    finally:
        client.close()
    # carol's first login (in the fixture) ran the one bcrypt; every call here was a cache hit.
    assert before >= 1
    assert proxy.bcrypt_runs() == before
    assert proxy.metric("cache_lookups_total", outcome="hit") > 5
    assert USER_PASSWORD not in proxy.log()
