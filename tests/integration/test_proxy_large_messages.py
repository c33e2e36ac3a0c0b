"""Large messages through a real proxy process: 16 and 64 MiB requests and responses arrive
byte for byte (compared by sha256 on both sides), and a request over Milvus's 64 MiB limit is
refused with the status Milvus gives it, without reaching the upstream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import grpc
import pytest

from bench.common import ROOT
from bench.payload import INSERT, SEARCH, UNLIMITED, insert_request, search_request, sized
from milvus_auth.proxy.forwarding import MILVUS_MAX_MESSAGE_BYTES
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyFactory, ProxyProcess
from tests.harness.real_milvus import RealMilvus
from tests.harness.upstream import StubUpstream

MIB = 1024 * 1024


@pytest.fixture
def proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, upstream: StubUpstream
) -> ProxyProcess:
    """A proxy with authentication and authorization on (root) in front of the echo upstream."""
    return proxy_factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=upstream.endpoint
    )


@pytest.mark.slow
@pytest.mark.parametrize("build", [insert_request, search_request], ids=["insert", "search"])
@pytest.mark.parametrize("size", [16 * MIB, MILVUS_MAX_MESSAGE_BYTES], ids=["16MiB", "64MiB"])
def test_large_requests_and_responses_pass_byte_for_byte(
    proxy: ProxyProcess, upstream: StubUpstream, build: Callable[[bytes], bytes], size: int
) -> None:
    request = sized(build, size)
    sent = hashlib.sha256(request).hexdigest()
    method = INSERT if build is insert_request else SEARCH
    with grpc.insecure_channel(proxy.address, options=UNLIMITED) as channel:
        response = channel.unary_unary(method)(request, metadata=ROOT, timeout=60)
    assert upstream.last().method == method
    assert upstream.last().digest == sent  # the request arrived unchanged
    assert len(response) == size
    assert hashlib.sha256(response).hexdigest() == sent  # and the echoed response came back


def _status(target: str, request: bytes) -> tuple[grpc.StatusCode, str]:
    with (
        grpc.insecure_channel(target, options=UNLIMITED) as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        channel.unary_unary(INSERT)(request, metadata=ROOT, timeout=60)
    error = raised.value
    return error.code(), error.details() or ""  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_request_over_the_limit_is_refused_before_the_upstream(
    proxy: ProxyProcess, upstream: StubUpstream
) -> None:
    request = sized(insert_request, MILVUS_MAX_MESSAGE_BYTES + 1)
    direct_code, _ = _status(upstream.endpoint, request)
    code, details = _status(proxy.address, request)
    assert code == direct_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in details
    assert all(call.method != INSERT for call in upstream.received)


@pytest.mark.slow
@pytest.mark.real_milvus
def test_a_request_over_the_limit_gets_milvus_status(
    real_milvus: RealMilvus, proxy_factory: ProxyFactory
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=real_milvus.etcd.endpoint,
        meta_root=real_milvus.meta_root,
        upstream=f"127.0.0.1:{real_milvus.port}",
        root_password=None,
    )
    request = sized(insert_request, MILVUS_MAX_MESSAGE_BYTES + 1)
    direct_code, direct_details = _status(f"127.0.0.1:{real_milvus.port}", request)
    code, details = _status(proxy.address, request)
    assert code == direct_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Go's gRPC and gRPC core word it alike: "...received message larger than max (N vs. M)".
    assert f"({len(request)} vs. {MILVUS_MAX_MESSAGE_BYTES})" in direct_details
    assert f"({len(request)} vs. {MILVUS_MAX_MESSAGE_BYTES})" in details
