"""Raw forwarding of every public call to the upstream Milvus over one shared channel.

Requests and responses stay bytes: nothing is decoded or re-encoded. Metadata, the caller's
deadline and cancellation go upstream; the upstream's status code, details, initial and
trailing metadata come back unchanged. The RPC shape (unary or streaming) comes from the
descriptors pymilvus ships; unknown methods are forwarded as bidirectional streams, which
carry any shape on the wire.

The client's `authorization` goes upstream as sent, except that `--upstream-token-file`
replaces it for every call, and a caller proved by an API key is sent as Milvus's own proxy
sends one (`<user>:___`): the key never leaves this proxy.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NoReturn, TypeAlias

import grpc
from grpc_health.v1 import health_pb2
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.proxy.authn.headers import AUTHORIZATION_METADATA, api_key_user_authorization
from milvus_auth.proxy.authn.identity import Proof, current_identity
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.tls import ClientTls, channel

Context = grpc.aio.ServicerContext[bytes, bytes]
Metadata = list[tuple[str, str | bytes]]
UNKNOWN_METHOD_LABEL = "other"  # the metrics label of every path outside the known services
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # the stubs are generic, grpc is not
# gRPC sets these itself on the upstream call; HTTP/2 pseudo-headers (":...") are dropped too.
HOP_BY_HOP = frozenset({"user-agent", "te", "content-type", "grpc-timeout", "grpc-encoding"})
MILVUS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Milvus's proxy.grpc.serverMaxRecvSize (and serverMaxSendSize) default."""
# Milvus messages can be large (search results, bulk inserts): responses are the upstream's to
# limit, and requests reach it only within the public port's limit (`public_message_options`).
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)
# A restarted upstream is found again within 2 s (gRPC's default backoff grows to 120 s).
_UPSTREAM_OPTIONS = (
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # The proxy never retries (the client decides); the retry filter's buffering costs latency.
    ("grpc.enable_retries", 0),
)


def public_message_options(max_message_bytes: int) -> tuple[tuple[str, int], ...]:
    """The public port's message limits: a request larger than `max_message_bytes` is refused
    with RESOURCE_EXHAUSTED, as Milvus refuses one over its serverMaxRecvSize, and is never
    forwarded; a response is relayed at any size the upstream sends."""
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
    )


def method_shapes() -> dict[str, tuple[bool, bool]]:
    """`/package.Service/Method` -> (client streams, server streams) for known services."""
    shapes: dict[str, tuple[bool, bool]] = {}
    for descriptor in (milvus_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR):
        for service in descriptor.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                shapes[path] = (method.client_streaming, method.server_streaming)
    return shapes


class Upstream:
    """The shared channel to the upstream Milvus and one forwarding handler per method."""

    def __init__(
        self,
        target: str,
        *,
        metrics: ProxyMetrics,
        token: str | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self._channel = channel(target, tls, _UPSTREAM_OPTIONS)
        self._metrics = metrics
        self._authorization = base64.b64encode(token.encode()).decode() if token else None
        self._shapes = method_shapes()
        self._handlers: dict[str, Handler] = {}

    async def close(self) -> None:
        """Close the channel (in-flight calls are cancelled)."""
        await self._channel.close()

    def known(self, method: str) -> bool:
        """Whether the method is in the descriptors pymilvus ships (or gRPC health)."""
        return method in self._shapes

    def handler(self, method: str) -> Handler:
        """The forwarding handler for a method; built once for known methods."""
        found = self._handlers.get(method)
        if found is None:
            found = self._build(method)
            if self.known(method):
                self._handlers[method] = found
        return found

    def _build(self, method: str) -> Handler:
        client_streams, server_streams = self._shapes.get(method, (True, True))
        channel = self._channel
        if not client_streams and not server_streams:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_unary(method, channel.unary_unary(method))
            )
        if not client_streams:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, channel.unary_stream(method))
            )
        if not server_streams:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_unary(method, channel.stream_unary(method))
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(method, channel.stream_stream(method))
        )

    def _unary_unary(
        self, method: str, multicallable: Callable[..., Any]
    ) -> Callable[[Any, Context], Any]:
        """A handler answering one response: unary-unary, or stream-unary (same flow)."""

        observe = self._observer(method)

        async def forward(request: Any, context: Context) -> bytes:
            started = time.perf_counter()
            call = multicallable(
                request, metadata=self._metadata(context), timeout=context.time_remaining()
            )
            try:
                response: bytes = await call
            except grpc.aio.AioRpcError as error:
                observe(error.code(), started)
                await _abort_like(context, error)
            except asyncio.CancelledError:
                call.cancel()
                raise
            observe(grpc.StatusCode.OK, started)
            await relay_metadata(context, call)
            return response

        return forward

    def _streaming(
        self, method: str, multicallable: Callable[..., Any]
    ) -> Callable[[Any, Context], AsyncIterator[bytes]]:
        """A handler relaying a response stream: unary-stream or stream-stream."""

        observe = self._observer(method)

        async def forward(request: Any, context: Context) -> AsyncIterator[bytes]:
            started = time.perf_counter()
            call = multicallable(
                request, metadata=self._metadata(context), timeout=context.time_remaining()
            )
            sent_initial = False
            try:
                initial = await call.initial_metadata()
                if initial:
                    await context.send_initial_metadata(_pairs(initial))
                sent_initial = True
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                observe(error.code(), started)
                await _abort_like(context, error, send_initial=not sent_initial)
            finally:
                call.cancel()  # a no-op once finished; stops upstream if the caller went away
            observe(grpc.StatusCode.OK, started)
            trailing = await call.trailing_metadata()
            if trailing:
                context.set_trailing_metadata(_pairs(trailing))

        return forward

    def _metadata(self, context: Context) -> Metadata:
        authorization = self._authorization
        if authorization is None:
            identity = current_identity()
            if identity is not None and identity.proof is Proof.API_KEY:
                authorization = api_key_user_authorization(identity.username)
        forwarded: Metadata = []
        for key, value in context.invocation_metadata() or ():
            if key.startswith(":") or key in HOP_BY_HOP:
                continue
            if authorization is not None and key == AUTHORIZATION_METADATA:
                continue
            forwarded.append((key, value))
        if authorization is not None:
            forwarded.append((AUTHORIZATION_METADATA, authorization))
        return forwarded

    def _observer(self, method: str) -> Callable[[grpc.StatusCode, float], None]:
        """Records one forwarded call; the metric children of the common case are resolved
        once, as `labels()` takes a lock and builds a key on every call."""
        # Paths outside the known services share one label: a client inventing paths must
        # not grow the metrics without bound.
        label = method if self.known(method) else UNKNOWN_METHOD_LABEL
        latency = self._metrics.upstream_seconds.labels(label)
        succeeded = self._metrics.forwarded.labels(label, grpc.StatusCode.OK.name)
        forwarded = self._metrics.forwarded

        def observe(code: grpc.StatusCode, started: float) -> None:
            latency.observe(time.perf_counter() - started)
            if code is grpc.StatusCode.OK:
                succeeded.inc()
            else:
                forwarded.labels(label, code.name).inc()

        return observe


async def relay_metadata(context: Context, call: Any) -> None:
    """Send a finished upstream call's initial and trailing metadata back to the caller."""
    initial = await call.initial_metadata()
    if initial:
        await context.send_initial_metadata(_pairs(initial))
    trailing = await call.trailing_metadata()
    if trailing:
        context.set_trailing_metadata(_pairs(trailing))


async def _abort_like(
    context: Context, error: grpc.aio.AioRpcError, *, send_initial: bool = True
) -> NoReturn:
    """End the call with the upstream's status, details and trailing metadata."""
    initial = error.initial_metadata()
    if send_initial and initial:
        await context.send_initial_metadata(_pairs(initial))
    await context.abort(error.code(), error.details() or "", _pairs(error.trailing_metadata()))


def _pairs(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[tuple[str, Any], ...]:
    # grpc's Cython layer takes only tuples here.
    return tuple((key, value) for key, value in metadata or ())
