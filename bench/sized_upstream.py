"""The upstream of bench/payload.py, in a process of its own: `python -m bench.sized_upstream PORT`.

A grpc.aio server with Milvus's proxy limits (requests up to 64 MiB) that answers every unary
call with as many bytes as the call's `x-response-bytes` metadata asks for (none when absent),
built once per size, as a Milvus answering a large search would send one.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from milvus_auth.proxy.forwarding import MILVUS_MAX_MESSAGE_BYTES

RESPONSE_BYTES = "x-response-bytes"


class _Sized(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self._responses: dict[int, bytes] = {}

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        responses = self._responses

        async def answer(_: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            asked = dict(context.invocation_metadata() or ()).get(RESPONSE_BYTES, "0")
            size = int(asked)
            if size not in responses:
                responses[size] = bytes(size)
            return responses[size]

        return grpc.unary_unary_rpc_method_handler(answer)


async def serve(port: int) -> None:
    """Answer on `port` until killed."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MILVUS_MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", -1),
        ]
    )
    server.add_generic_rpc_handlers((_Sized(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
