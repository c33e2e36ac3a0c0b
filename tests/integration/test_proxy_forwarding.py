"""Raw forwarding through a real proxy process to a recording upstream in the test process.

Metadata, deadlines, status codes, details, trailing metadata and streams travel unchanged;
an unreachable upstream is UNAVAILABLE and the proxy keeps serving; SIGTERM lets in-flight
calls finish.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import grpc
import pytest

from tests.harness.processes import EtcdServer, free_port, wait_until
from tests.harness.proxy import ProxyFactory, ProxyProcess
from tests.harness.upstream import FAIL_DETAILS, FAIL_TRAILER, StubUpstream

GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"


@pytest.fixture
def open_proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, upstream: StubUpstream
) -> ProxyProcess:
    """A proxy with auth off in front of the recording upstream."""
    return proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=upstream.endpoint,
        auth_enabled=False,
        root_password=None,
    )


def test_metadata_deadline_and_trailers_travel(
    open_proxy: ProxyProcess, upstream: StubUpstream
) -> None:
    metadata = (
        ("dbname", "db1"),
        ("identifier", "42"),
        ("client-request-id", "req-7"),
        ("authorization", base64.b64encode(b"alice:pw").decode()),
        ("blob-bin", b"\x00\x01"),
    )
    with grpc.insecure_channel(open_proxy.address) as channel:
        call = channel.unary_unary(GET_VERSION)
        response, outcome = call.with_call(b"\x0a\x03abc", metadata=metadata, timeout=5)
    assert response == b"\x0a\x03abc"
    assert ("upstream-trailer", "yes") in tuple(outcome.trailing_metadata())
    seen = upstream.last()
    assert seen.method == GET_VERSION
    for key, value in metadata:
        assert seen.metadata[key] == value
    assert seen.time_remaining is not None
    # gRPC encodes a deadline in whole units rounded up on each hop, so the upstream may see a
    # few milliseconds more than the caller's 5 s; what matters is that it is not unbounded.
    assert 3.5 < seen.time_remaining <= 5.1


def test_upstream_status_details_and_trailers_come_back(open_proxy: ProxyProcess) -> None:
    with (
        grpc.insecure_channel(open_proxy.address) as channel,
        pytest.raises(grpc.RpcError) as failed,
    ):
        channel.unary_unary("/test.Stub/Fail")(b"", timeout=5)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == FAIL_DETAILS
    assert FAIL_TRAILER in tuple(failed.value.trailing_metadata())


def test_streams_are_forwarded(open_proxy: ProxyProcess) -> None:
    with grpc.insecure_channel(open_proxy.address) as channel:
        chat = channel.stream_stream("/test.Stub/Chat")
        replies = list(chat(iter([b"a", b"b", b"c"]), timeout=5))
    assert replies == [b"a!", b"b!", b"c!"]


def test_caller_deadline_cuts_the_upstream_call(
    open_proxy: ProxyProcess, upstream: StubUpstream
) -> None:
    with (
        grpc.insecure_channel(open_proxy.address) as channel,
        pytest.raises(grpc.RpcError) as failed,
    ):
        channel.unary_unary("/test.Stub/Slow")(b"5", timeout=0.5)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    remaining = upstream.last().time_remaining
    assert remaining is not None
    # The caller's 0.5 s, not a deadline of the proxy's own (gRPC rounds each hop's encoded
    # timeout up, so the upstream may see a fraction of a millisecond more).
    assert remaining <= 0.51


def test_caller_cancellation_reaches_the_upstream(
    open_proxy: ProxyProcess, upstream: StubUpstream
) -> None:
    with grpc.insecure_channel(open_proxy.address) as channel:
        pending = channel.unary_unary("/test.Stub/Slow").future(b"10", timeout=30)
        wait_until(lambda: bool(upstream.received), timeout=5, what="the call upstream")
        pending.cancel()
    assert upstream.abandoned.wait(5)


def test_upstream_token_replaces_the_callers_authorization(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    upstream: StubUpstream,
    workdir: Path,
) -> None:
    token_file = workdir / "upstream-token"
    token_file.write_text("svc:Upstream-Pass\n")
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=upstream.endpoint,
        extra_args=["--upstream-token-file", str(token_file)],
    )
    root = base64.b64encode(b"root:Milvus").decode()
    with grpc.insecure_channel(proxy.address) as channel:
        channel.unary_unary(GET_VERSION)(b"", metadata=(("authorization", root),), timeout=5)
    sent = upstream.last().metadata["authorization"]
    assert sent == base64.b64encode(b"svc:Upstream-Pass").decode()


def test_unreachable_upstream_is_unavailable_and_the_proxy_recovers(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str
) -> None:
    port = free_port()
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=f"127.0.0.1:{port}",
        auth_enabled=False,
        root_password=None,
    )
    with grpc.insecure_channel(proxy.address) as channel:
        call = channel.unary_unary(GET_VERSION)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as failed:
                call(b"", timeout=5)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proxy.running
        with StubUpstream(port) as late:
            wait_until(lambda: _answers(call), timeout=5, what="the proxy reaching the upstream")
            assert late.last().method == GET_VERSION


def _answers(call: grpc.UnaryUnaryMultiCallable) -> bool:
    try:
        return call(b"x", timeout=5) == b"x"
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False


def test_sigterm_lets_in_flight_calls_finish(open_proxy: ProxyProcess) -> None:
    results: list[bytes] = []
    with grpc.insecure_channel(open_proxy.address) as channel:
        slow = channel.unary_unary("/test.Stub/Slow")
        slow(b"0", timeout=5)  # connected before the shutdown
        worker = threading.Thread(target=lambda: results.append(slow(b"1.0", timeout=10)))
        worker.start()
        threading.Event().wait(0.3)
        assert open_proxy.process is not None
        open_proxy.process.terminate()
        worker.join(10)
    assert results == [b"slept"]
    assert open_proxy.process.wait(10) == 0


def test_forwarded_calls_are_counted(open_proxy: ProxyProcess) -> None:
    with grpc.insecure_channel(open_proxy.address) as channel:
        channel.unary_unary(GET_VERSION)(b"", timeout=5)
        with pytest.raises(grpc.RpcError):
            channel.unary_unary("/test.Stub/Fail")(b"", timeout=5)
    assert open_proxy.metric("forwarded_total", method=GET_VERSION, code="OK") == 1
    assert open_proxy.metric("forwarded_total", method="other", code="NOT_FOUND") == 1
    assert open_proxy.metric("upstream_seconds_count", method=GET_VERSION) == 1
