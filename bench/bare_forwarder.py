"""The floor of a Python gRPC proxy: a bare grpc.aio forwarder with no auth, metrics or metadata.

bench/overhead.py runs it next to the real proxy, so the report shows how much of the proxy's
cost is grpc.aio itself (one server-side and one client-side call per request) and how much
is milvus-auth's own work. Run as `python -m bench.bare_forwarder UPSTREAM PORT [--relay]`.

With `--relay` it also does what any correct gRPC proxy must: the caller's metadata goes
upstream (without hop-by-hop headers) and the upstream's initial and trailing metadata come
back, with milvus-auth's own relay (bench/percall.py shows what that alone costs).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from milvus_auth.proxy.forwarding import HOP_BY_HOP, relay_metadata


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel, *, relay: bool) -> None:
        self._channel = channel
        self._relay = relay
        self._handlers: dict[str, Any] = {}

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        method: str = details.method
        handler = self._handlers.get(method)
        if handler is None:
            upstream = self._channel.unary_unary(method)

            async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await upstream(request, timeout=context.time_remaining())

            async def relay(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                metadata = [
                    (key, value)
                    for key, value in context.invocation_metadata() or ()
                    if not key.startswith(":") and key not in HOP_BY_HOP
                ]
                call = upstream(request, metadata=metadata, timeout=context.time_remaining())
                response = await call
                await relay_metadata(context, call)
                return response

            behaviour = relay if self._relay else forward
            handler = self._handlers[method] = grpc.unary_unary_rpc_method_handler(behaviour)
        return handler


async def serve(upstream: str, port: int, *, relay: bool = False) -> None:
    """Forward every unary call on `port` to `upstream` until killed."""
    channel = grpc.aio.insecure_channel(upstream, options=[("grpc.enable_retries", 0)])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Forward(channel, relay=relay),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), relay="--relay" in sys.argv[3:]))
