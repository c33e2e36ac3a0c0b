"""Policy coherence: etcd changes enforced by every proxy without any RPC, Milvus's cache RPC
ops 1-7 through a client generated from the project's proto, and etcd outages failing closed.
"""

from __future__ import annotations

import time

import grpc
import pytest

from milvus_auth.core.grants import Policy
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import EtcdSettings
from tests.harness.calls import raw_code, search_code
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, wait_until
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess
from tests.harness.rbac import Rbac

PASSWORD = "Coherent-Pass1"
DENIED = grpc.StatusCode.PERMISSION_DENIED
SHOW = "/milvus.proto.milvus.MilvusService/ShowCollections"


@pytest.fixture
def rbac(etcd_settings: EtcdSettings, meta_root: str) -> Rbac:
    policy = Rbac(etcd_settings, meta_root)
    for role in ("admin", "public", "reader"):
        policy.create_role(role)
    policy.create_user("ann", PASSWORD)
    policy.bind("ann", "reader")
    return policy


def _ann(proxy: ProxyProcess) -> grpc.StatusCode:
    return search_code(proxy, "ann", PASSWORD, "books")


def test_grants_and_revokes_in_etcd_reach_another_proxy_without_rpc(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, rbac: Rbac
) -> None:
    first, second = (
        proxy_factory(etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint)
        for _ in range(2)
    )
    assert _ann(first) == DENIED
    assert _ann(second) == DENIED
    for _ in range(3):
        rbac.grant_v1("reader", "Collection", "books", "Search")
        started = time.monotonic()
        wait_until(lambda: _ann(second) != DENIED, timeout=10, what="the grant on proxy 2")
        granted_after = time.monotonic() - started
        assert _ann(first) != DENIED
        rbac.revoke_v1("reader", "Collection", "books", "Search")
        wait_until(lambda: _ann(second) == DENIED, timeout=10, what="the revoke on proxy 2")
        assert _ann(first) == DENIED
        print(f"grant seen by proxy 2 after {granted_after:.3f} s")
    for proxy in (first, second):
        assert proxy.metric("forwarded_total", method="/milvus.proto.milvus.MilvusService/Search")


def _refresh(proxy: ProxyProcess, op: int, key: str) -> object:
    with grpc.insecure_channel(proxy.internal_address) as channel:
        stub = proxy_pb2_grpc.ProxyStub(channel)
        return stub.RefreshPolicyInfoCache(
            proxy_pb2.RefreshPolicyInfoCacheRequest(opType=op, opKey=key), timeout=10
        )


def test_refresh_policy_info_cache_ops_one_to_seven(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, rbac: Rbac
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint
    )
    search = Policy("reader", "Collection-default.books", "PrivilegeSearch").to_json()
    rbac.grant_v1("admin", "Global", "*", "DescribeCollection")  # a change that is not ann's
    assert _ann(proxy) == DENIED

    def ok(op: int, key: str) -> None:
        status = _refresh(proxy, op, key)
        assert (status.code, status.error_code) == (0, 0), status  # type: ignore[attr-defined]

    ok(3, search)
    assert _ann(proxy) != DENIED
    ok(4, search)
    assert _ann(proxy) == DENIED
    ok(3, search)
    ok(2, "ann/reader")
    assert _ann(proxy) == DENIED
    ok(1, "ann/reader")
    assert _ann(proxy) != DENIED
    ok(5, "ann")
    assert _ann(proxy) == DENIED
    ok(1, "ann/reader")
    ok(6, "reader")
    assert _ann(proxy) == DENIED
    ok(3, search)
    ok(1, "ann/reader")
    assert _ann(proxy) != DENIED
    ok(7, "")  # etcd's truth: ann is bound, but reader holds no Search
    assert _ann(proxy) == DENIED
    bad = _refresh(proxy, 1, "no-slash")
    assert bad.code == 65535  # type: ignore[attr-defined]
    assert bad.reason == "invalid opKey, fail to decode, op_type: 1, op_key: no-slash"  # type: ignore[attr-defined]
    assert _refresh(proxy, 9, "x").reason == "invalid opType, op_type: 9, op_key: x"  # type: ignore[attr-defined]


def test_etcd_down_fails_closed_and_recovers(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, rbac: Rbac
) -> None:
    rbac.grant_v1("reader", "Collection", "books", "Search")
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint
    )
    assert _ann(proxy) != DENIED  # ann's password is now cached: authentication needs no etcd
    assert search_code(proxy, "root", ROOT_PASSWORD, "books") != DENIED  # so is root's
    etcd.stop()
    try:
        wait_until(
            lambda: _ann(proxy) == grpc.StatusCode.UNAVAILABLE,
            timeout=20,
            what="checks failing closed once the policy watch is lost",
        )
        for _ in range(3):
            assert _ann(proxy) == grpc.StatusCode.UNAVAILABLE  # never an allow on stale data
            # nor a list filtered on stale grants
            assert raw_code(proxy, "ann", PASSWORD, SHOW) == grpc.StatusCode.UNAVAILABLE
            assert search_code(proxy, "root", ROOT_PASSWORD, "books") not in (
                DENIED,
                grpc.StatusCode.UNAVAILABLE,
            )  # root needs no policy
    finally:
        etcd.start()
    wait_until(
        lambda: _ann(proxy) not in (DENIED, grpc.StatusCode.UNAVAILABLE),
        timeout=30,
        what="checks passing again once etcd is back",
    )
    rbac.revoke_v1("reader", "Collection", "books", "Search")
    wait_until(lambda: _ann(proxy) == DENIED, timeout=10, what="the watch working again")
