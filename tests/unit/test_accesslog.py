"""The access log around handlers of every shape, in-process: codes, sizes, sampling, lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from milvus_auth.proxy.accesslog import AccessLog, AccessLogSettings, LineWriter, timestamp
from milvus_auth.proxy.authn.loglimit import LogLimitSettings

UNARY = "/test.S/Unary"
STREAM = "/test.S/Stream"
UPLOAD = "/test.S/Upload"
ABORT = "/test.S/Abort"
CRASH = "/test.S/Crash"
SEARCH = "/milvus.proto.milvus.MilvusService/DropCollection"


async def unary(request: bytes, context: Any) -> bytes:
    return request * 2


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for chunk in (b"a", b"bb", b"ccc"):
        yield chunk


async def upload(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([request async for request in requests])


async def abort(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("unreachable")


async def crash(request: bytes, context: Any) -> bytes:
    raise ValueError("a bug")


HANDLERS: dict[str, Any] = {
    UNARY: grpc.unary_unary_rpc_method_handler(unary),
    STREAM: grpc.unary_stream_rpc_method_handler(stream),
    UPLOAD: grpc.stream_unary_rpc_method_handler(upload),
    ABORT: grpc.unary_unary_rpc_method_handler(abort),
    CRASH: grpc.unary_unary_rpc_method_handler(crash),
    SEARCH: grpc.unary_unary_rpc_method_handler(unary),
}


class Router(grpc.GenericRpcHandler):
    def __init__(self, log: AccessLog) -> None:
        self.log = log

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        return self.log.wrap(details.method, HANDLERS[details.method])


async def calls(log: AccessLog, run: Callable[[grpc.aio.Channel], Any]) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Router(log),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await run(channel)
    finally:
        await server.stop(None)
    log.flush(final=True)


def lines(path: Path) -> dict[str, dict[str, Any]]:
    return {line["method"]: line for line in map(json.loads, path.read_text().splitlines())}


async def every_shape(channel: grpc.aio.Channel) -> None:
    assert await channel.unary_unary(UNARY)(b"xyz") == b"xyzxyz"
    assert [r async for r in channel.unary_stream(STREAM)(b"q")] == [b"a", b"bb", b"ccc"]
    assert await channel.stream_unary(UPLOAD)(iter([b"12", b"345"])) == b"12345"
    for method, code in ((ABORT, grpc.StatusCode.NOT_FOUND), (CRASH, grpc.StatusCode.UNKNOWN)):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await channel.unary_unary(method)(b"")
        assert failed.value.code() == code
    # DropCollectionRequest{collection_name (3): "books\n"}: the name is read, escaped.
    await channel.unary_unary(SEARCH)(b"\x1a\x06books\n", metadata=(("dbname", "shop"),))


async def test_every_shape_and_outcome_gets_its_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    settings = AccessLogSettings(str(path))
    log = AccessLog(settings, LineWriter(settings), failed_logins=LogLimitSettings())
    await calls(log, every_shape)
    found = lines(path)
    assert (
        found[UNARY]["code"],
        found[UNARY]["request_bytes"],
        found[UNARY]["response_bytes"],
    ) == ("OK", 3, 6)
    assert (found[STREAM]["request_bytes"], found[STREAM]["response_bytes"]) == (1, 6)
    assert (found[UPLOAD]["request_bytes"], found[UPLOAD]["response_bytes"]) == (5, 5)
    assert found[ABORT]["code"] == "NOT_FOUND"
    assert found[ABORT]["response_bytes"] is None
    assert found[CRASH]["code"] == "UNKNOWN"
    assert found[SEARCH]["collection"] == "books\n"
    assert found[SEARCH]["database"] == "shop"
    assert '"books\\n"' in path.read_text()  # one line per call: the newline is escaped
    for line in found.values():
        assert (line["user"], line["proof"], line["decision"]) == (None, "none", None)
        assert line["latency_ms"] >= 0


async def test_sampling_skips_successes_never_failures(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    settings = AccessLogSettings(str(path), sample_rate=0.5)
    log = AccessLog(
        settings, LineWriter(settings), failed_logins=LogLimitSettings(), sample=lambda: 0.9
    )
    await calls(log, every_shape)
    assert set(lines(path)) == {ABORT, CRASH}


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    assert timestamp(0.25) == "1970-01-01T00:00:00.250Z"
    assert timestamp(1_700_000_000.9999) == "2023-11-14T22:13:20.999Z"
