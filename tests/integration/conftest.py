"""Fixtures of the integration tests: milvus-lite, proxy processes, one proxy, the real Milvus."""

from __future__ import annotations

import pytest

from tests.harness.milvus import MilvusLite, milvus, milvus_server
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyFactory, ProxyProcess, proxy_factory

__all__ = ["milvus", "milvus_server", "proxy_factory"]


@pytest.fixture
def proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> ProxyProcess:
    """A proxy with auth on, root/Milvus bootstrapped, in front of the session's milvus-lite."""
    return proxy_factory(etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint)
