"""The supervisor's internal port: every call goes to every worker; one answer comes back.

The operator's "Ready = every proxy took it" needs a cache RPC to reach every worker, so the
supervisor forwards each internal call, as raw bytes and with its metadata (the internal token
included: the workers check it, as a single proxy does), to every worker's private endpoint,
and answers only when all have answered. Nothing here knows a method: any unary internal
service a worker registers (Milvus's cache RPCs, API-key cache RPCs, ...) reaches every worker
with no code here. gRPC health is not forwarded: the supervisor answers it itself.

How the answers become one (`merge`, pure): a worker that fails the call fails it for all; the
same answer from every worker is that answer; different answers are a failure, never a success:
the first one that is a failed `common.Status` (every cache RPC answers one), else INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

log = logging.getLogger(__name__)

# Longest a fanned-out call may take when the caller sets no deadline: a worker that hangs must
# not hang the operator's call forever.
MAX_CALL_SECONDS = 30.0
# Metadata gRPC sets itself on each hop; everything else (the internal token) is passed on.
_HOP_METADATA = frozenset({"user-agent"})

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class Failed:
    """A worker's call that ended in a gRPC error."""

    code: grpc.StatusCode
    details: str


Answer = bytes | Failed


@dataclass(frozen=True)
class Merged:
    """The one answer of all workers: `answer` bytes, or `failed` with the worker's index."""

    answer: bytes | None = None
    failed: Failed | None = None
    worker: int | None = None


def merge(answers: Sequence[Answer]) -> Merged:
    """One answer from every worker's answer (in worker order); see the module docstring."""
    for index, answer in enumerate(answers):
        if isinstance(answer, Failed):
            return Merged(failed=answer, worker=index)
    replies = [answer for answer in answers if isinstance(answer, bytes)]
    if len(set(replies)) <= 1:
        return Merged(answer=replies[0] if replies else b"")
    for index, reply in enumerate(replies):
        if _failed_status(reply):
            return Merged(answer=reply, worker=index)
    return Merged(
        failed=Failed(grpc.StatusCode.INTERNAL, "the proxy's workers answered differently")
    )


def _status_codes() -> type[Message]:
    """Milvus's `common.Status` as far as failure goes: `error_code` (1, an enum: a varint on
    the wire) and `code` (3). Built here so the supervisor never imports pymilvus (about
    100 MiB of memory for a process that only forwards bytes)."""
    file = descriptor_pb2.FileDescriptorProto(name="status_codes.proto", syntax="proto3")
    message = file.message_type.add(name="StatusCodes")
    for name, number in (("error_code", 1), ("code", 3)):
        message.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("StatusCodes"))


_StatusCodes = _status_codes()


def _failed_status(reply: bytes) -> bool:
    try:
        status: Any = _StatusCodes.FromString(reply)
    except DecodeError:
        return False
    return bool(status.error_code or status.code)


WorkerCall = Callable[[str, bytes, Sequence[tuple[str, str]], float], Awaitable[Answer]]
"""One worker's side of a call: (method, request, metadata, timeout) -> its answer."""


class FanOut(grpc.GenericRpcHandler):
    """Answers every method by calling it on every worker (`calls`, one per worker)."""

    def __init__(self, calls: Callable[[], Sequence[WorkerCall]]) -> None:
        self._calls = calls

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method: str = handler_call_details.method

        async def fan_out(request: bytes, context: Context) -> bytes:
            metadata = [
                (key, value)
                for key, value in context.invocation_metadata() or ()
                if key not in _HOP_METADATA and isinstance(value, str)
            ]
            remaining = context.time_remaining()
            timeout = MAX_CALL_SECONDS if remaining is None else min(remaining, MAX_CALL_SECONDS)
            answers = await asyncio.gather(
                *(call(method, request, metadata, timeout) for call in self._calls())
            )
            merged = merge(answers)
            if merged.worker is not None:
                log.warning(
                    "internal call %s failed on worker %d: it answers a failure for all",
                    method,
                    merged.worker,
                )
            if merged.failed is not None:
                prefix = "" if merged.worker is None else f"worker {merged.worker}: "
                await context.abort(merged.failed.code, prefix + merged.failed.details)
            assert merged.answer is not None
            return merged.answer

        return grpc.unary_unary_rpc_method_handler(fan_out)
