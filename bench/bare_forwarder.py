"""The floor of a Python gRPC proxy: a bare grpc.aio forwarder with no auth, metrics or metadata.

bench/overhead.py runs it next to the real proxy, so the report shows how much of the proxy's
cost is grpc.aio itself (one server-side and one client-side call per request) and how much
is milvus-auth's own work. Run as `python -m bench.bare_forwarder UPSTREAM PORT`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._handlers: dict[str, Any] = {}

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        method: str = details.method
        handler = self._handlers.get(method)
        if handler is None:
            upstream = self._channel.unary_unary(method)

            async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await upstream(request, timeout=context.time_remaining())

            handler = self._handlers[method] = grpc.unary_unary_rpc_method_handler(forward)
        return handler


async def serve(upstream: str, port: int) -> None:
    """Forward every unary call on `port` to `upstream` until killed."""
    channel = grpc.aio.insecure_channel(upstream, options=[("grpc.enable_retries", 0)])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Forward(channel),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
