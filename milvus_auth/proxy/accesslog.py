"""The access log: one JSON line per public call, to stdout or to a rotated file.

Each line tells who called (peer, user, how the user was proved), what (method, database,
collection), what the privilege check decided, how it ended (gRPC code), how long it took and
how many bytes went each way. Successful calls are sampled at `sample_rate`; every failed call
is written, except that failed logins share the bound of the failed-login log (loglimit.py):
a few lines per username and client address per window, then one summary line.

Never a secret: no header, request or response body is written, only sizes and the names the
privilege table says a request carries; the user is a proved identity, or for a failed login
the claimed username when it is a valid one (logsafe), never the password.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import logging.handlers
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from google.protobuf.descriptor import FieldDescriptor
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.core.wire import WireError, string_field
from milvus_auth.proxy.authn.headers import AuthFailure, authorization_values, parse_authorization
from milvus_auth.proxy.authn.identity import current_identity, header_database
from milvus_auth.proxy.authn.loglimit import (
    LogLimiter,
    LogLimitSettings,
    Suppressed,
    flush_every,
)
from milvus_auth.proxy.authn.ratelimit import peer_address
from milvus_auth.proxy.authz.note import noted_decision
from milvus_auth.proxy.authz.objects import request_bytes
from milvus_auth.proxy.guard import Behaviour, Context, Handler, rewrapped
from milvus_auth.proxy.logsafe import INVALID, MAX_SHOWN_TEXT, valid_username

STDOUT = "-"
FLUSH_SECONDS = 1.0
"""How long a buffered line may wait before it reaches the file or stdout."""
_COLLECTION_FIELD = "collection_name"
_UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@dataclass(frozen=True)
class AccessLogSettings:
    """Where the access log goes and how much of it."""

    destination: str
    """A file path, or `-` for stdout."""
    sample_rate: float = 1.0
    """Share of successful calls written, 0..1; failed calls are always written."""
    max_bytes: int = 100 * 2**20
    """The file is rotated at this size; 0 never rotates (stdout never does)."""
    backups: int = 5
    """Rotated files kept (`access.log.1` ...)."""


class CallRecord(NamedTuple):
    """One finished call, as the access log shows it (a tuple: made on every logged call)."""

    time: float
    peer: str
    user: str | None
    proof: str
    method: str
    database: str
    collection: str | None
    decision: str | None
    code: str
    latency: float
    request_bytes: int | None
    response_bytes: int | None

    def json(self) -> str:
        """The access log line: JSON, ASCII only (client-chosen text is escaped)."""
        return (
            f'{{"time":"{timestamp(self.time)}","event":"call","peer":{_quoted(self.peer)},'
            f'"user":{_quoted(self.user)},"proof":"{self.proof}","method":{_quoted(self.method)},'
            f'"database":{_quoted(self.database)},"collection":{_quoted(self.collection)},'
            f'"decision":{_quoted(self.decision)},"code":"{self.code}",'
            f'"latency_ms":{self.latency * 1e3:.3f},"request_bytes":{_number(self.request_bytes)},'
            f'"response_bytes":{_number(self.response_bytes)}}}'
        )


def _quoted(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def timestamp(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds, as Loki and Elasticsearch parse it."""
    return f"{_whole_seconds(int(seconds))}.{int(seconds % 1 * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _whole_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def suppressed_json(suppressed: Suppressed, now: float) -> str:
    """The summary line of failed logins that got no line of their own."""
    return json.dumps(
        {
            "time": timestamp(now),
            "event": "suppressed",
            "user": suppressed.username,
            "peer": suppressed.address,
            "count": suppressed.count,
            "seconds": round(suppressed.seconds, 3),
        },
        separators=(",", ":"),
    )


class LineWriter:
    """Appends lines to stdout or to a file rotated by `logging.handlers.RotatingFileHandler`.

    Buffered: a line costs no system call of its own; the buffer goes out when full and when
    `flush` is called (every second by `AccessLog.run`, and at shutdown). Per-line logging
    records and flushes cost the proxy a tenth of its throughput (bench/accesslog.py).
    """

    def __init__(self, settings: AccessLogSettings) -> None:
        self._rotating: logging.handlers.RotatingFileHandler | None = None
        self._handler: logging.StreamHandler[Any]
        self._limit = self._size = 0
        if settings.destination == STDOUT:
            self._handler = logging.StreamHandler(sys.stdout)
            return
        self._handler = self._rotating = logging.handlers.RotatingFileHandler(
            settings.destination,
            maxBytes=settings.max_bytes,
            backupCount=settings.backups,
            encoding="utf-8",
        )
        if settings.backups > 0:  # as RotatingFileHandler: no backups, no rotation
            self._limit = settings.max_bytes
        self._size = Path(settings.destination).stat().st_size

    def write(self, line: str) -> None:
        """Append one line (ASCII, so its length is its size in bytes)."""
        data = line + "\n"
        if self._limit and self._rotating is not None:
            if self._size and self._size + len(data) > self._limit:
                self._rotating.doRollover()
                self._size = 0
            self._size += len(data)
        self._handler.stream.write(data)

    def flush(self) -> None:
        """Write out what the buffer holds."""
        self._handler.flush()


class AccessLog:
    """Wraps every public method's handler (outside the checks) and writes its lines."""

    def __init__(
        self,
        settings: AccessLogSettings,
        writer: LineWriter,
        *,
        failed_logins: LogLimitSettings,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self._rate = settings.sample_rate
        self._writer = writer
        self._limiter = LogLimiter(failed_logins)
        self._sample = sample
        self._collection_fields = collection_fields()

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The same handler, measured and logged."""
        call = _Call(self, _shown(method), self._collection_fields.get(method))
        return rewrapped(handler, returning=call.returning, streaming=call.streaming)

    def sampled(self, code: grpc.StatusCode) -> bool:
        """Whether a call that ended with `code` gets a line (before any of it is measured)."""
        return code is not grpc.StatusCode.OK or self._rate >= 1.0 or self._sample() < self._rate

    def write(self, record: CallRecord) -> None:
        """Write a call's line; failed logins only while the failed-login bound allows."""
        if record.code == _UNAUTHENTICATED.name:
            self._summarize()
            if not self._limiter.admit(record.user or "None", peer_address(record.peer)):
                return
        self._writer.write(record.json())

    def flush(self, *, final: bool = False) -> None:
        """Write the summaries of a window that ended (`final`: of the current one too), then
        the buffer."""
        self._summarize(final=final)
        self._writer.flush()

    def _summarize(self, *, final: bool = False) -> None:
        """The summary lines of the failed logins a window suppressed."""
        for suppressed in self._limiter.roll(final=final):
            self._writer.write(suppressed_json(suppressed, time.time()))

    async def run(self) -> None:
        """Flush the buffered lines every second, with the suppressed failed logins of each
        window that ended even when no call follows."""
        await flush_every(FLUSH_SECONDS, self.flush)


class _Call:
    """The measuring wrappers of one method."""

    def __init__(self, log: AccessLog, method: str, collection_field: int | None) -> None:
        self._log = log
        self._method = method
        self._collection_field = collection_field

    def returning(self, behaviour: Behaviour, unary: bool) -> Behaviour:
        async def logged(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            sizes = _Sizes()
            response = None
            code = grpc.StatusCode.OK
            try:
                response = await behaviour(request if unary else sizes.count(request), context)
            except BaseException as error:
                code = _code(error, context)
                raise
            finally:
                if response is not None:
                    sizes.response = _size(response)
                self._finish(request if unary else None, context, code, started, sizes)
            return response

        return logged

    def streaming(self, behaviour: Behaviour, unary: bool) -> Behaviour:
        if not inspect.isasyncgenfunction(behaviour):
            return self.returning(behaviour, unary)  # writes with context.write: not counted

        async def logged(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            sizes = _Sizes()
            sizes.response = 0
            code = grpc.StatusCode.OK
            try:
                async for response in behaviour(
                    request if unary else sizes.count(request), context
                ):
                    sizes.response += _size(response)
                    yield response
            except BaseException as error:
                code = _code(error, context)
                raise
            finally:
                self._finish(request if unary else None, context, code, started, sizes)

        return logged

    def _finish(
        self,
        request: Any,
        context: Context,
        code: grpc.StatusCode,
        started: float,
        sizes: _Sizes,
    ) -> None:
        log = self._log
        if not log.sampled(code):
            return
        latency = time.perf_counter() - started
        identity = current_identity()
        decision = noted_decision()
        if identity is not None:
            user: str | None = identity.username
            proof = identity.proof.value
            database = identity.database
        else:  # authentication off, or the call was refused before it was proved
            metadata = context.invocation_metadata()
            user = _claimed_user(metadata) if code is _UNAUTHENTICATED else None
            proof = "none"
            database = header_database(metadata)
        log.write(
            CallRecord(
                time=time.time(),
                peer=context.peer(),
                user=user,
                proof=proof,
                method=self._method,
                database=_shown(database),
                collection=self._collection(request),
                decision=None if decision is None else decision.value,
                code=code.name,
                latency=latency,
                request_bytes=sizes.request if request is None else _size(request),
                response_bytes=sizes.response,
            )
        )

    def _collection(self, request: Any) -> str | None:
        if self._collection_field is None or request is None:
            return None
        try:
            return _shown(string_field(request_bytes(request), self._collection_field))
        except WireError:
            return None


class _Sizes:
    """Bytes of a call's messages, counted as they pass."""

    def __init__(self) -> None:
        self.request: int | None = None
        self.response: int | None = None

    async def count(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        self.request = 0
        async for request in requests:
            self.request += _size(request)
            yield request


def collection_fields() -> dict[str, int]:
    """`/milvus.proto.milvus.MilvusService/Method` -> the field number of its request's
    `collection_name`, for the methods whose request has one (from pymilvus's descriptors)."""
    found: dict[str, int] = {}
    for service in milvus_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            field = method.input_type.fields_by_name.get(_COLLECTION_FIELD)
            if field is not None and field.type == FieldDescriptor.TYPE_STRING:
                found[f"/{service.full_name}/{method.name}"] = field.number
    return found


def _size(message: Any) -> int:
    """Serialized size: forwarded calls carry bytes, the proxy's own services messages."""
    if isinstance(message, bytes):
        return len(message)
    return int(message.ByteSize())


def _code(error: BaseException, context: Context) -> grpc.StatusCode:
    """How a call that raised ends: the code an abort set, CANCELLED, or UNKNOWN."""
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        if isinstance(code, grpc.StatusCode):
            return code
    if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _claimed_user(metadata: Any) -> str | None:
    """The username a refused caller claimed, when it is one Milvus could store."""
    try:
        username = parse_authorization(authorization_values(metadata)).username
    except AuthFailure:
        return None
    return username if valid_username(username) else INVALID


def _shown(text: str) -> str:
    """Client-chosen text cut to a bounded length (JSON escapes the rest)."""
    if len(text) <= MAX_SHOWN_TEXT:
        return text
    return f"{text[:MAX_SHOWN_TEXT]}...({len(text)} chars)"
