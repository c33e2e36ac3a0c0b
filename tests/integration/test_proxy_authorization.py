"""The permission matrix through a real proxy: real etcd, milvus-lite upstream, pymilvus.

Roles and grants are written to etcd as a stock RootCoord writes them (`PolicyStore`) before
the proxy starts. Every allowed call reaches the upstream (its method's `forwarded_total`
grows, whatever milvus-lite answers); every denied call ends with PERMISSION_DENIED and
Milvus 2.6's text, and the upstream never sees it (the count stays).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.store import EtcdSettings
from tests.harness.calls import raw_code
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess
from tests.harness.rbac import Rbac

PASSWORD = "Matrix-Pass1"
SERVICE = "/milvus.proto.milvus.MilvusService/"
USERS = ("norole", "reader", "writer", "grouped", "boss", "root")

Action = Callable[[MilvusClient, str], object]


@dataclass(frozen=True)
class Case:
    """One call: the method whose privilege it needs, the privilege, and what it does."""

    method: str
    privilege: str
    action: Action
    forwarded: bool = True  # False: the proxy serves it itself


def _rows(n: int) -> list[dict[str, object]]:
    return [{"id": 1000 + i, "vector": [0.1 * i, 0.2]} for i in range(n)]


CASES: dict[str, Case] = {
    "create_collection": Case(
        "CreateCollection",
        "CreateCollection",
        lambda c, u: c.create_collection(f"new_{u}", dimension=2),
    ),
    "drop_collection": Case(
        "DropCollection", "DropCollection", lambda c, u: c.drop_collection(f"drop_{u}")
    ),
    "describe_collection": Case(
        "DescribeCollection", "DescribeCollection", lambda c, _: c.describe_collection("books")
    ),
    "insert": Case("Insert", "Insert", lambda c, _: c.insert("books", _rows(2))),
    "search": Case("Search", "Search", lambda c, _: c.search("books", [[0.1, 0.2]], limit=1)),
    "query": Case("Query", "Query", lambda c, _: c.query("books", filter="id >= 0", limit=1)),
    "delete": Case("Delete", "Delete", lambda c, _: c.delete("books", ids=[1000])),
    "create_index": Case(
        "CreateIndex", "CreateIndex", lambda c, _: c.create_index("books", _index(c))
    ),
    "create_user": Case(
        "CreateCredential",
        "CreateOwnership",
        lambda c, u: c.create_user(f"made_by_{u}", PASSWORD),
        forwarded=False,
    ),
    "create_role": Case(
        "CreateRole", "CreateOwnership", lambda c, u: c.create_role(f"r_{u}"), forwarded=False
    ),
}

ALLOWED: dict[str, set[str]] = {
    # Every user holds `public`, granted DescribeCollection as Milvus's RootCoord grants it;
    # but a user none of whose grants names the collection may not see it (HIDDEN).
    "norole": set(),
    "reader": {"describe_collection", "search", "query"},
    "writer": {
        "create_collection",
        "drop_collection",
        "describe_collection",
        "insert",
        "search",
        "query",
        "delete",
        "create_index",
    },
    "grouped": {"describe_collection", "insert", "delete"},
    "boss": set(CASES),
    "root": set(CASES),
}


HIDDEN = {("norole", "describe_collection")}


def _index(client: MilvusClient) -> object:
    params = client.prepare_index_params()
    params.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    return params


@pytest.fixture
def matrix_proxy(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    etcd_settings: EtcdSettings,
    meta_root: str,
    milvus: MilvusLite,
) -> Iterator[ProxyProcess]:
    rbac = Rbac(etcd_settings, meta_root)
    for builtin in ("admin", "public"):  # what RootCoord's initRbac creates at every start
        rbac.create_role(builtin)
    rbac.grant_v1("public", "Global", "*", "DescribeCollection")
    rbac.create_role("reader")
    for privilege in ("Search", "Query"):
        rbac.grant_v1("reader", "Collection", "books", privilege)
    rbac.create_role("writer")
    rbac.grant_v2("writer", "CollectionReadWrite", collection="*")
    rbac.grant_v2("writer", "DatabaseAdmin")
    rbac.create_group("ingest", ["Insert", "Delete"])
    rbac.create_role("grouped")
    rbac.grant_v2("grouped", "ingest", collection="books", groups={"ingest": ["Insert", "Delete"]})
    for user in USERS[:-1]:
        rbac.create_user(user, PASSWORD)
    for user, role in (("reader", "reader"), ("writer", "writer"), ("grouped", "grouped")):
        rbac.bind(user, role)
    rbac.bind("boss", "admin")
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint
    )
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        for name in list(root.list_collections()):
            root.drop_collection(name)
        root.create_collection("books", dimension=2)
        root.insert("books", _rows(3))
        for user in USERS:
            root.create_collection(f"drop_{user}", dimension=2)
        yield proxy
    finally:
        root.close()


def _forwarded(proxy: ProxyProcess, method: str) -> float:
    return proxy.metric("forwarded_total", method=SERVICE + method)


@pytest.mark.parametrize("user", USERS)
def test_permission_matrix(matrix_proxy: ProxyProcess, user: str) -> None:
    password = ROOT_PASSWORD if user == "root" else PASSWORD
    client = MilvusClient(uri=matrix_proxy.uri, user=user, password=password, timeout=10)
    try:
        for name, case in CASES.items():
            before = _forwarded(matrix_proxy, case.method)
            denied: grpc.RpcError | None = None
            refused: MilvusException | None = None  # the upstream's own refusals are not ours
            try:
                case.action(client, user)
            except grpc.RpcError as error:
                denied = error if error.code() == grpc.StatusCode.PERMISSION_DENIED else None
            except MilvusException as error:
                refused = error
            assert "permission deny" not in str(refused), (user, name, refused)
            reached = _forwarded(matrix_proxy, case.method) > before
            if (user, name) in HIDDEN:
                assert refused is not None, (user, name)
                assert refused.code == 1401
                assert refused.message == (
                    "not allowed to access collection, collection name: books: "
                    "privilege not permitted"
                )
                assert not reached
            elif name in ALLOWED[user]:
                assert denied is None, (user, name, denied)
                assert reached or not case.forwarded, (user, name)
            else:
                assert denied is not None, (user, name)
                assert denied.details() == (
                    f"Privilege{case.privilege}: permission deny to {user} in the "
                    "`default` database"
                )
                assert not reached, (user, name)
    finally:
        client.close()


def test_lists_show_only_what_the_grants_name(matrix_proxy: ProxyProcess) -> None:
    expected_collections = {
        "norole": [],
        "reader": ["books"],
        "grouped": ["books"],
        "writer": None,  # CollectionReadWrite on `*`: everything
        "boss": None,
        "root": None,
    }
    every = sorted(["books", *(f"drop_{user}" for user in USERS)])
    for user, collections in expected_collections.items():
        password = ROOT_PASSWORD if user == "root" else PASSWORD
        client = MilvusClient(uri=matrix_proxy.uri, user=user, password=password, timeout=10)
        try:
            shown = sorted(client.list_collections())
            assert shown == (every if collections is None else collections), user
            databases = client.list_databases()
            assert databases == ([] if user == "norole" else ["default"]), user
        finally:
            client.close()


def test_a_method_the_table_does_not_know_is_refused_to_all_but_root(
    matrix_proxy: ProxyProcess,
) -> None:
    unknown = "/milvus.proto.milvus.MilvusService/NoSuchMethod"
    before = matrix_proxy.metric("forwarded_total")
    assert raw_code(matrix_proxy, "boss", PASSWORD, unknown) == grpc.StatusCode.PERMISSION_DENIED
    assert matrix_proxy.metric("forwarded_total") == before
    root = raw_code(matrix_proxy, "root", ROOT_PASSWORD, unknown)
    assert root != grpc.StatusCode.PERMISSION_DENIED  # forwarded; milvus-lite refuses it
    assert matrix_proxy.metric("forwarded_total") > before
