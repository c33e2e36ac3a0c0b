"""Fixtures of the integration tests: milvus-lite, a recording stub upstream, proxy processes,
one proxy, the real Milvus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.milvus import MilvusLite, milvus, milvus_server
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyFactory, ProxyProcess, proxy_factory
from tests.harness.upstream import StubUpstream

__all__ = ["milvus", "milvus_server", "proxy_factory"]


@pytest.fixture
def proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> ProxyProcess:
    """A proxy with auth on, root/Milvus bootstrapped, in front of the session's milvus-lite."""
    return proxy_factory(etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint)


@pytest.fixture
def upstream() -> Iterator[StubUpstream]:
    """A recording gRPC upstream in this process (tests/harness/upstream.py)."""
    with StubUpstream() as stub:
        yield stub
