"""The internal port's cache RPCs and health, through a real in-process gRPC server.

The client is generated from the project's own proxy.proto; the authenticator is a recording
fake (the real one is exercised through the proxy process in tests/integration).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core import cache_digest
from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, RECORD_REVISION_PROPERTY
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.proxy.services.internal import add_internal_services
from milvus_auth.store import EtcdUnavailable

TOKEN = "s3cret-internal-token"


class RecordingCache:
    """Remembers what the RPCs did to the cache."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {"alice": "old", "bob": "old"}
        self.calls: list[tuple[str, str]] = []
        self.revisions: dict[str, int | None] = {}

    def prewarm(self, username: str, digest: str, revision: int | None = None) -> None:
        self.calls.append(("prewarm", username))
        self.entries[username] = digest
        self.revisions[username] = revision

    def invalidate(self, username: str) -> None:
        self.calls.append(("invalidate", username))
        self.entries.pop(username, None)


class Revisions:
    """etcd's current revision, as the store reports it; `down` fails like etcd."""

    current = 20
    down = False

    async def revision(self) -> int:
        if self.down:
            raise EtcdUnavailable("etcd at 127.0.0.1:1 is unavailable (test)")
        return self.current


@pytest.fixture
def cache() -> RecordingCache:
    return RecordingCache()


REVISIONS = Revisions()


async def _serve(cache: RecordingCache, token: str | None) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    add_internal_services(server, cache, token=token, revisions=REVISIONS)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def open_port(cache: RecordingCache) -> AsyncIterator[grpc.aio.Channel]:
    server, port = await _serve(cache, None)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


@pytest.fixture
async def token_port(cache: RecordingCache) -> AsyncIterator[grpc.aio.Channel]:
    server, port = await _serve(cache, TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


async def test_update_prewarms_with_the_digest(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    digest = cache_digest("carol", "Secret123")
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(
        proxy_pb2.UpdateCredCacheRequest(username="carol", password=digest)
    )
    assert (status.error_code, status.code, status.reason) == (0, 0, "")
    assert cache.entries["carol"] == digest
    assert cache.revisions["carol"] is None  # stock RootCoord sends no revision


async def test_update_passes_on_the_record_revision(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    request = proxy_pb2.UpdateCredCacheRequest(
        base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: "17"}),
        username="carol",
        password=cache_digest("carol", "Secret123"),
    )
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(request)
    assert (status.error_code, status.code) == (0, 0)
    assert cache.revisions["carol"] == 17


@pytest.mark.parametrize("revision", [REVISIONS.current + 1, 10**18])
async def test_update_refuses_a_revision_etcd_has_not_reached(
    open_port: grpc.aio.Channel,
    cache: RecordingCache,
    caplog: pytest.LogCaptureFixture,
    revision: int,
) -> None:
    request = proxy_pb2.UpdateCredCacheRequest(
        base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: str(revision)}),
        username="carol",
        password=cache_digest("carol", "Secret123"),
    )
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(request)
    assert status.code == 1100
    assert status.reason.startswith(f"{RECORD_REVISION_PROPERTY} {revision} is ahead of etcd's")
    assert "carol" not in cache.entries
    (line,) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert "cache rpc refused" in line.getMessage()


async def test_update_with_a_revision_fails_while_etcd_is_down(
    open_port: grpc.aio.Channel, cache: RecordingCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(REVISIONS, "down", True)
    request = proxy_pb2.UpdateCredCacheRequest(
        base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: "17"}),
        username="carol",
        password=cache_digest("carol", "Secret123"),
    )
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(request)
    assert status.error_code == common_pb2.ErrorCode.UnexpectedError
    assert "unavailable" in status.reason
    assert "carol" not in cache.entries


async def test_update_refuses_a_revision_that_is_not_a_number(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    request = proxy_pb2.UpdateCredCacheRequest(
        base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: "-1"}),
        username="carol",
        password=cache_digest("carol", "Secret123"),
    )
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(request)
    assert status.code == 1100
    assert "carol" not in cache.entries


async def test_update_refuses_a_value_that_is_not_a_digest(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    status = await proxy_pb2_grpc.ProxyStub(open_port).UpdateCredentialCache(
        proxy_pb2.UpdateCredCacheRequest(username="carol", password="Secret123")
    )
    assert status.code == 1100
    assert status.error_code == common_pb2.ErrorCode.IllegalArgument
    assert status.reason.startswith("invalid credential cache value: invalid parameter")
    assert "carol" not in cache.entries


async def test_invalid_username_is_a_failed_status(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    status = await proxy_pb2_grpc.ProxyStub(open_port).InvalidateCredentialCache(
        proxy_pb2.InvalidateCredCacheRequest(username="")
    )
    assert (status.code, status.reason) == (1100, "username must be not empty: invalid parameter")
    assert cache.calls == []


async def test_invalidate_drops(open_port: grpc.aio.Channel, cache: RecordingCache) -> None:
    status = await proxy_pb2_grpc.ProxyStub(open_port).InvalidateCredentialCache(
        proxy_pb2.InvalidateCredCacheRequest(base=common_pb2.MsgBase(msgID=1), username="alice")
    )
    assert status.code == 0
    assert "alice" not in cache.entries
    assert "bob" in cache.entries


async def test_refresh_delete_user_drops_and_other_ops_succeed(
    open_port: grpc.aio.Channel, cache: RecordingCache
) -> None:
    stub = proxy_pb2_grpc.ProxyStub(open_port)
    for op_type in (1, 2, 3, 4, 6, 7):
        status = await stub.RefreshPolicyInfoCache(
            proxy_pb2.RefreshPolicyInfoCacheRequest(opType=op_type, opKey="bob")
        )
        assert status.code == 0
    assert cache.calls == []
    status = await stub.RefreshPolicyInfoCache(
        proxy_pb2.RefreshPolicyInfoCacheRequest(opType=5, opKey="bob")
    )
    assert status.code == 0
    assert cache.calls == [("invalidate", "bob")]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), f"missing {INTERNAL_TOKEN_METADATA} in metadata"),
        (((INTERNAL_TOKEN_METADATA, "wrong"),), "invalid internal token"),
        (((INTERNAL_TOKEN_METADATA, TOKEN + "x"),), "invalid internal token"),
        ((("authorization", TOKEN),), f"missing {INTERNAL_TOKEN_METADATA} in metadata"),
    ],
)
async def test_token_refused(
    token_port: grpc.aio.Channel,
    cache: RecordingCache,
    metadata: tuple[tuple[str, str], ...],
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = proxy_pb2_grpc.ProxyStub(token_port)
    digest = cache_digest("alice", "Secret123")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UpdateCredentialCache(
            proxy_pb2.UpdateCredCacheRequest(username="alice", password=digest), metadata=metadata
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == message
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.RefreshPolicyInfoCache(
            proxy_pb2.RefreshPolicyInfoCacheRequest(opType=5, opKey="bob"), metadata=metadata
        )
    assert cache.calls == []
    assert TOKEN not in caplog.text
    assert digest not in caplog.text


async def test_right_token_accepted(token_port: grpc.aio.Channel, cache: RecordingCache) -> None:
    status = await proxy_pb2_grpc.ProxyStub(token_port).InvalidateCredentialCache(
        proxy_pb2.InvalidateCredCacheRequest(username="alice"),
        metadata=((INTERNAL_TOKEN_METADATA, TOKEN),),
    )
    assert status.code == 0
    assert cache.calls == [("invalidate", "alice")]


async def test_health_serves_without_the_token(token_port: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(token_port).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty internal token"):
        add_internal_services(grpc.aio.server(), RecordingCache(), token="", revisions=REVISIONS)
