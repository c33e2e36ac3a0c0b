"""Differential: the same users, roles and grants, the same calls, against the real Milvus 2.3.5
and against milvus-auth (milvus-lite upstream): allowed and denied alike.

Both sides get their records from `PolicyStore` writes into their own meta root (the real
Milvus reads them after `RefreshPolicyInfoCache` op 7; the proxy through its watch). Calls are
pymilvus's generated `MilvusServiceStub` requests, so no client-side pre-call (a describe)
differs between the two. 2.3 denies with `<PrivilegeX>: permission deny to <user>`; 2.6, and
milvus-auth, append `` in the `<db>` database ``: the proxy's text is asserted in full.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from milvus_auth.store import Endpoint, EtcdSettings
from tests.harness.milvus import MilvusLite
from tests.harness.proxy import ROOT_PASSWORD as PROXY_ROOT_PASSWORD
from tests.harness.proxy import ProxyFactory, ProxyProcess
from tests.harness.rbac import Rbac
from tests.harness.real_milvus import ROOT_PASSWORD, RealMilvus

pytestmark = pytest.mark.real_milvus

PASSWORD = "Differ-Pass1"
# Unique names: the real Milvus's records are shared with test_real_milvus.py in one session.
_S = uuid.uuid4().hex[:6]
NOROLE, READER, ALL = f"dn_{_S}", f"dr_{_S}", f"da_{_S}"
READER_ROLE, ALL_ROLE = f"rr_{_S}", f"ra_{_S}"
Stub = milvus_pb2_grpc.MilvusServiceStub
Call = Callable[[Stub, str, list[tuple[str, str]]], object]


def _calls(collection: str) -> dict[str, tuple[str, Call]]:
    """name -> (privilege Milvus checks, the call)."""
    return {
        "query": (
            "PrivilegeQuery",
            lambda s, _, m: s.Query(
                milvus_pb2.QueryRequest(collection_name=collection, expr="id >= 0"), metadata=m
            ),
        ),
        "insert": (
            "PrivilegeInsert",
            lambda s, _, m: s.Insert(
                milvus_pb2.InsertRequest(collection_name=collection, num_rows=0), metadata=m
            ),
        ),
        "drop_collection": (
            "PrivilegeDropCollection",
            lambda s, u, m: s.DropCollection(
                milvus_pb2.DropCollectionRequest(collection_name=f"absent_{u}"), metadata=m
            ),
        ),
        "create_user": (
            "PrivilegeCreateOwnership",
            lambda s, u, m: s.CreateCredential(
                milvus_pb2.CreateCredentialRequest(
                    username=f"made_{u}_{uuid.uuid4().hex[:4]}",
                    password=base64.b64encode(b"Made-Pass1").decode(),
                ),
                metadata=m,
            ),
        ),
        "select_grant_other_role": (
            "PrivilegeSelectOwnership",
            lambda s, _, m: s.SelectGrant(_select_grant(ALL_ROLE), metadata=m),
        ),
    }


def _select_grant(role: str) -> milvus_pb2.SelectGrantRequest:
    request = milvus_pb2.SelectGrantRequest()
    request.entity.role.name = role
    return request


def _seed(rbac: Rbac, collection: str) -> None:
    """The same users, roles and grants on either side."""
    rbac.create_role(READER_ROLE)
    rbac.create_role(ALL_ROLE)
    for privilege in ("Query", "Insert"):
        rbac.grant_v1(READER_ROLE, "Collection", collection, privilege)
    rbac.grant_v1(ALL_ROLE, "Global", "*", "All")
    for user in (NOROLE, READER, ALL):
        rbac.create_user(user, PASSWORD)
    rbac.bind(READER, READER_ROLE)
    rbac.bind(ALL, ALL_ROLE)


def _outcome(address: str, user: str, call: Call) -> str:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    with grpc.insecure_channel(address) as channel:
        try:
            call(Stub(channel), user, [("authorization", token)])
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                return str(error.details())
            return f"error {error.code().name}"
    return "allowed"


@pytest.fixture
def sides(
    real_milvus: RealMilvus, proxy_factory: ProxyFactory, milvus: MilvusLite
) -> Iterator[tuple[str, ProxyProcess, str]]:
    collection = f"diff_{uuid.uuid4().hex[:6]}"
    settings = EtcdSettings(endpoints=(Endpoint.parse(real_milvus.etcd.endpoint),))
    theirs = Rbac(settings, real_milvus.meta_root)
    _seed(theirs, collection)
    ours_root = f"ours-{uuid.uuid4().hex[:8]}/meta"
    ours = Rbac(settings, ours_root)
    for builtin in ("admin", "public"):
        ours.create_role(builtin)
    _seed(ours, collection)
    real_milvus.refresh_policy_cache()
    proxy = proxy_factory(
        etcd_endpoint=real_milvus.etcd.endpoint, meta_root=ours_root, upstream=milvus.endpoint
    )
    clients = [
        MilvusClient(uri=real_milvus.uri, token=f"root:{ROOT_PASSWORD}"),
        MilvusClient(uri=proxy.uri, token=f"root:{PROXY_ROOT_PASSWORD}"),
    ]
    for client in clients:
        client.create_collection(collection, dimension=2)
    try:
        yield collection, proxy, f"127.0.0.1:{real_milvus.port}"
    finally:
        for client in clients:
            client.drop_collection(collection)
            client.close()


EXPECTED_ALLOWED = {
    NOROLE: set(),
    READER: {"query", "insert"},
    ALL: {"query", "insert", "drop_collection", "create_user", "select_grant_other_role"},
}


def test_same_calls_allowed_and_denied_by_both(sides: tuple[str, ProxyProcess, str]) -> None:
    collection, proxy, real_address = sides
    for user, allowed in EXPECTED_ALLOWED.items():
        for name, (privilege, call) in _calls(collection).items():
            theirs = _outcome(real_address, user, call)
            ours = _outcome(proxy.address, user, call)
            if name in allowed:
                assert "permission deny" not in theirs, (user, name, theirs)
                assert "permission deny" not in ours, (user, name, ours)
                continue
            assert theirs == f"{privilege}: permission deny to {user}", (user, name, theirs)
            assert ours == f"{theirs} in the `default` database", (user, name, ours)
