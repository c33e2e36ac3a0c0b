"""A small in-process gRPC upstream that records what the proxy forwards to it.

It answers any MilvusService method by echoing the request bytes (up to Milvus's 64 MiB, as
Milvus's proxy accepts), plus a few test methods:
`/test.Stub/Fail` (a status with details and trailing metadata), `/test.Stub/Slow` (sleeps the
seconds given in the request), `/test.Stub/Chat` (a bidirectional echo stream).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from milvus_auth.proxy.forwarding import MILVUS_MAX_MESSAGE_BYTES

FAIL_DETAILS = "collection not found[collection=missing]"
FAIL_TRAILER = ("milvus-error-detail", "from-upstream")


@dataclass(frozen=True)
class Received:
    """One call as the upstream saw it."""

    method: str
    metadata: dict[str, str | bytes]
    time_remaining: float | None
    digest: str = ""
    """sha256 of the request bytes (unary calls)."""


class StubUpstream:
    """A threaded gRPC server on a free loopback port; `received` lists every call."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.abandoned = threading.Event()
        """Set when a `/test.Stub/Slow` call saw its caller go away before it finished."""
        self._lock = threading.Lock()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16),
            options=[
                ("grpc.max_receive_message_length", MILVUS_MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", -1),
            ],
        )
        self._server.add_generic_rpc_handlers((_Router(self),))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")

    def __enter__(self) -> StubUpstream:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop(grace=None)

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:<port>` for the proxy's --upstream."""
        return f"127.0.0.1:{self.port}"

    def record(self, method: str, context: grpc.ServicerContext, request: bytes = b"") -> None:
        """Remember the call's metadata, deadline and request digest."""
        metadata = {key: value for key, value in context.invocation_metadata()}
        digest = hashlib.sha256(request).hexdigest()
        with self._lock:
            self.received.append(Received(method, metadata, context.time_remaining(), digest))

    def last(self) -> Received:
        """The most recent call."""
        with self._lock:
            return self.received[-1]


class _Router(grpc.GenericRpcHandler):
    def __init__(self, stub: StubUpstream) -> None:
        self._stub = stub

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = details.method
        stub = self._stub

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            stub.record(method, context, request)
            context.set_trailing_metadata((("upstream-trailer", "yes"),))
            return request

        def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
            stub.record(method, context)
            context.abort_with_status(_Status(grpc.StatusCode.NOT_FOUND, FAIL_DETAILS))
            raise AssertionError("abort_with_status returned")

        def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
            stub.record(method, context)
            deadline = time.monotonic() + float(request.decode())
            while time.monotonic() < deadline:
                if not context.is_active():
                    stub.abandoned.set()
                    break
                time.sleep(0.01)
            return b"slept"

        def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            stub.record(method, context)
            for request in requests:
                yield request + b"!"

        if method == "/test.Stub/Chat":
            return grpc.stream_stream_rpc_method_handler(chat)
        behaviours = {"/test.Stub/Fail": fail, "/test.Stub/Slow": slow}
        return grpc.unary_unary_rpc_method_handler(behaviours.get(method, echo))


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str], ...] = (FAIL_TRAILER,)
