"""Two proxies on one etcd: a password changed anywhere is refused everywhere within a second.

No cache RPC is sent to the other proxy: its etcd watch alone drops the stale entry. The same
holds for a change made with `milvus-auth users passwd` straight in etcd.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess

OLD = "Dave-Old-Pass1"
NEW = "Dave-New-Pass2"
TwoProxies = tuple[ProxyProcess, ProxyProcess]


@pytest.fixture
def two_proxies(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> TwoProxies:
    """Two proxies sharing etcd and upstream; dave exists and is cached on both."""
    first, second = (
        proxy_factory(etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint)
        for _ in range(2)
    )
    with_client(first, "root", ROOT_PASSWORD, lambda c: c.create_user("dave", OLD))
    for proxy in (first, second):
        with_client(proxy, "dave", OLD, lambda c: c.list_collections())
    assert second.bcrypt_runs() == 1  # dave is cached on the second proxy
    return first, second


def with_client(
    proxy: ProxyProcess, user: str, password: str, action: Callable[[MilvusClient], object]
) -> None:
    client = MilvusClient(uri=proxy.uri, user=user, password=password, timeout=10)
    try:
        action(client)
    finally:
        client.close()


def accepted(proxy: ProxyProcess, password: str) -> bool:
    try:
        with_client(proxy, "dave", password, lambda c: c.list_collections())
    except (MilvusException, grpc.RpcError):
        return False
    return True


def refused_within(proxy: ProxyProcess, password: str, seconds: float) -> float:
    started = time.monotonic()
    while accepted(proxy, password):
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"the old password still worked after {elapsed:.2f} s"
    return time.monotonic() - started


def test_password_changed_through_one_proxy_is_refused_on_the_other(
    two_proxies: TwoProxies,
) -> None:
    first, second = two_proxies
    with_client(first, "dave", OLD, lambda c: c.update_password("dave", OLD, NEW))
    refused_within(second, OLD, 1.0)
    assert accepted(second, NEW)
    assert second.metric("cache_lookups_total", outcome="hit") >= 1


def test_password_changed_in_etcd_by_the_cli_is_refused_on_both(
    two_proxies: TwoProxies, etcd: EtcdServer, meta_root: str
) -> None:
    changed = subprocess.run(
        [
            sys.executable,
            "-m",
            "milvus_auth.cli",
            "users",
            "passwd",
            "dave",
            "--password-file",
            "-",
            "--etcd-endpoints",
            etcd.endpoint,
            "--meta-root",
            meta_root,
            "--bcrypt-cost",
            "4",
        ],
        input=NEW,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert changed.returncode == 0, changed.stderr
    for proxy in two_proxies:
        refused_within(proxy, OLD, 1.0)
        assert accepted(proxy, NEW)


def test_deleted_user_is_refused_on_the_other_proxy(two_proxies: TwoProxies) -> None:
    first, second = two_proxies
    with_client(first, "root", ROOT_PASSWORD, lambda c: c.drop_user("dave"))
    refused_within(second, OLD, 1.0)
