"""Faults: etcd stopped (cached users pass, uncached get UNAVAILABLE, all recovers), upstream
stopped (UNAVAILABLE, the proxy stays up), and any header at all (a clean UNAUTHENTICATED).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus.grpc_gen import milvus_pb2

from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, wait_until
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess

LIST = "/milvus.proto.milvus.MilvusService/ShowCollections"
ERIN = "Erin-Pass-1"
SECRET = "Zebra-Secret-99"


def call(proxy: ProxyProcess, user: str, password: str) -> grpc.StatusCode:
    """One ShowCollections with these credentials; the status code it ended with."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return call_with(proxy, [("authorization", token)])


def call_with(proxy: ProxyProcess, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    request = milvus_pb2.ShowCollectionsRequest().SerializeToString()
    with grpc.insecure_channel(proxy.address) as channel:
        try:
            channel.unary_unary(LIST)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_etcd_down_cached_users_pass_uncached_are_unavailable(
    proxy: ProxyProcess, etcd: EtcdServer
) -> None:
    assert call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK  # root is now cached
    etcd.stop()
    try:
        for _ in range(3):
            assert call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK
            assert call(proxy, "erin", ERIN) == grpc.StatusCode.UNAVAILABLE
        # The watch is down too, so root's password may have changed unseen: another password
        # cannot be judged either way without etcd.
        assert call(proxy, "root", "wrong-password") == grpc.StatusCode.UNAVAILABLE
    finally:
        etcd.start()
    wait_until(
        lambda: call(proxy, "nobody", ERIN) == grpc.StatusCode.UNAUTHENTICATED,
        timeout=20,
        what="the proxy reading etcd again",
    )
    assert call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK
    assert proxy.running


def test_upstream_down_is_unavailable_and_the_proxy_stays_up(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, workdir: Path
) -> None:
    upstream = MilvusLite(workdir / "own-milvus")
    upstream.start()
    try:
        proxy = proxy_factory(
            etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=upstream.endpoint
        )
        assert call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK
        upstream.stop()
        assert call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.UNAVAILABLE
        assert call(proxy, "root", "wrong-password") == grpc.StatusCode.UNAUTHENTICATED
        upstream.start()
        wait_until(
            lambda: call(proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK,
            timeout=20,
            what="the upstream coming back",
        )
    finally:
        upstream.stop()


@pytest.fixture
def shared_proxy(proxy: ProxyProcess) -> Iterator[ProxyProcess]:
    yield proxy
    log = proxy.log()
    assert "Traceback" not in log
    header = base64.b64encode(f"root:{SECRET}".encode()).decode()
    for secret in (SECRET, f"root:{ROOT_PASSWORD}", header):
        assert secret not in log


_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
_encoded = st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode())
_values = st.lists(st.one_of(_printable, _encoded), min_size=1, max_size=5)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=_values)
def test_any_header_is_a_clean_unauthenticated(
    shared_proxy: ProxyProcess, values: list[str]
) -> None:
    code = call_with(shared_proxy, [("authorization", value) for value in values])
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_huge_and_non_utf8_headers(shared_proxy: ProxyProcess) -> None:
    huge = base64.b64encode(b"root:" + b"x" * 65536).decode()
    non_utf8 = base64.b64encode(b"r\xffot:\xfe\xfe").decode()
    for value in (huge, non_utf8, "=" * 40, base64.b64encode(b"root").decode()):
        assert call_with(shared_proxy, [("authorization", value)]) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    assert call(shared_proxy, "root", SECRET) == grpc.StatusCode.UNAUTHENTICATED
    assert call(shared_proxy, "root", ROOT_PASSWORD) == grpc.StatusCode.OK
