"""Proxy discovery from EndpointSlices, and the fan-out against in-process cache servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, RECORD_REVISION_PROPERTY
from milvus_auth.operator.config import ServiceRef
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import ProxyNotifier, ready_endpoints
from milvus_auth.protos import apikeys_pb2_grpc, proxy_pb2_grpc

SERVICE = ServiceRef("milvus", "proxy-internal")


CONTROLLER = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}


def _slice(
    service: str,
    endpoints: list[dict[str, Any]],
    port_name: str = "internal",
    managed_by: dict[str, str] = CONTROLLER,
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"kubernetes.io/service-name": service, **managed_by}},
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": 19529}, {"name": "grpc", "port": 19530}],
    }


def test_ready_endpoints_of_the_internal_port_only() -> None:
    slices = [
        _slice(
            "proxy-internal",
            [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"]},  # no conditions: ready
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
                {"addresses": ["fd00::4"], "conditions": {"ready": True}},
            ],
        ),
        _slice("proxy-internal", [{"addresses": ["10.0.0.1"]}]),  # duplicates collapse
        _slice("other-service", [{"addresses": ["10.0.0.9"]}]),
        _slice("proxy-internal", [{"addresses": ["10.0.0.5"]}], port_name="metrics"),
        # forged: the Service's name label, but not made by Kubernetes' EndpointSlice controller
        _slice("proxy-internal", [{"addresses": ["10.0.0.6"]}], managed_by={}),
        _slice(
            "proxy-internal",
            [{"addresses": ["10.0.0.7"]}],
            managed_by={"endpointslice.kubernetes.io/managed-by": "someone.example.com"},
        ),
    ]
    assert ready_endpoints(slices, SERVICE) == [
        "10.0.0.1:19529",
        "10.0.0.2:19529",
        "[fd00::4]:19529",
    ]


class _Cache(proxy_pb2_grpc.ProxyServicer):
    """A cache service that records calls and answers with a configurable status code."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.calls: list[tuple[str, str, str | None]] = []
        self.revisions: list[str | None] = []

    async def UpdateCredentialCache(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = dict(context.invocation_metadata() or ()).get(INTERNAL_TOKEN_METADATA)
        self.calls.append((request.username, request.password, token))
        self.revisions.append(request.base.properties.get(RECORD_REVISION_PROPERTY))
        return common_pb2.Status(code=self.code, reason="refused" if self.code else "")

    async def InvalidateCredentialCache(
        self, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        self.calls.append((request.username, "", None))
        return common_pb2.Status()

    async def RefreshPolicyInfoCache(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = dict(context.invocation_metadata() or ()).get(INTERNAL_TOKEN_METADATA)
        self.calls.append((f"op{request.opType}", request.opKey, token))
        return common_pb2.Status(code=self.code, reason="refused" if self.code else "")


class _Slices:
    """Stands in for the Kubernetes client: serves a fixed list of EndpointSlices."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    async def list(self, path: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        assert path == "/apis/discovery.k8s.io/v1/namespaces/milvus/endpointslices"
        assert label_selector == (
            "kubernetes.io/service-name=proxy-internal,"
            "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
        )
        return [
            {
                "metadata": {
                    "labels": {"kubernetes.io/service-name": "proxy-internal", **CONTROLLER}
                },
                "endpoints": [{"addresses": ["127.0.0.1"]}],
                "ports": [{"name": "internal", "port": port}],
            }
            for port in self.ports
        ]


@pytest.fixture
async def servers() -> AsyncIterator[list[tuple[_Cache, int]]]:
    started = []
    for code in (0, 0, 65535):
        cache = _Cache(code)
        server = grpc.aio.server()
        proxy_pb2_grpc.add_ProxyServicer_to_server(cache, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        started.append((server, cache, port))
    yield [(cache, port) for _, cache, port in started]
    for server, _, _ in started:
        await server.stop(None)


async def test_fan_out_counts_confirmations_and_sends_the_token(
    servers: list[tuple[_Cache, int]],
) -> None:
    metrics = OperatorMetrics()
    ports = [port for _, port in servers] + [1]  # port 1: nothing listens
    notifier = ProxyNotifier(
        kube=_Slices(ports),  # type: ignore[arg-type]
        service=SERVICE,
        token="tkn",
        timeout=1.0,
        metrics=metrics,
    )
    try:
        result = await notifier.update("alice", "digest", revision=42)
        untagged = await notifier.update("alice", "digest", revision=None)
    finally:
        await notifier.close()
    assert (result.updated, result.total, result.complete) == (2, 4, False)
    assert (untagged.updated, untagged.total) == (2, 4)
    for cache, _ in servers:
        assert cache.calls == [("alice", "digest", "tkn")] * 2
        assert cache.revisions == ["42", None]
    failures = metrics.registry.get_sample_value(
        "milvus_auth_operator_proxy_failures_total", {"rpc": "UpdateCredentialCache"}
    )
    assert failures == 4.0  # two failing proxies, two updates


async def test_policy_refresh_is_a_full_refresh_on_every_proxy(
    servers: list[tuple[_Cache, int]],
) -> None:
    metrics = OperatorMetrics()
    notifier = ProxyNotifier(
        kube=_Slices([port for _, port in servers]),  # type: ignore[arg-type]
        service=SERVICE,
        token="tkn",
        timeout=1.0,
        metrics=metrics,
    )
    try:
        result = await notifier.refresh_policy()
    finally:
        await notifier.close()
    assert (result.updated, result.total) == (2, 3)  # the third proxy refuses
    for cache, _ in servers:
        assert cache.calls == [("op7", "", "tkn")]
    failures = metrics.registry.get_sample_value(
        "milvus_auth_operator_proxy_failures_total", {"rpc": "RefreshPolicyInfoCache"}
    )
    assert failures == 1.0


async def test_no_proxy_service_means_nothing_to_notify() -> None:
    notifier = ProxyNotifier(
        kube=_Slices([]),  # type: ignore[arg-type]
        service=None,
        token=None,
        timeout=1.0,
        metrics=OperatorMetrics(),
    )
    result = await notifier.invalidate("alice")
    assert (result.updated, result.total, result.complete) == (0, 0, True)


class _KeyCache(apikeys_pb2_grpc.ApiKeyCacheServicer):
    """milvus-auth's API key cache service: records the ids it was asked to drop."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.dropped: list[tuple[str, str | None]] = []

    async def InvalidateApiKeyCache(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = dict(context.invocation_metadata() or ()).get(INTERNAL_TOKEN_METADATA)
        self.dropped.append((request.key_id, token))
        return common_pb2.Status(code=self.code, reason="refused" if self.code else "")


async def test_api_key_invalidation_counts_stock_milvus_as_confirmed(
    servers: list[tuple[_Cache, int]],
) -> None:
    key_caches, key_servers, key_ports = [], [], []
    for code in (0, 65535):
        cache = _KeyCache(code)
        server = grpc.aio.server()
        apikeys_pb2_grpc.add_ApiKeyCacheServicer_to_server(cache, server)
        key_ports.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        key_caches.append(cache)
        key_servers.append(server)
    metrics = OperatorMetrics()
    # `servers` serve only Milvus's Proxy service, as a stock Milvus does: UNIMPLEMENTED.
    ports = [port for _, port in servers] + key_ports + [1]  # port 1: nothing listens
    notifier = ProxyNotifier(
        kube=_Slices(ports),  # type: ignore[arg-type]
        service=SERVICE,
        token="tkn",
        timeout=1.0,
        metrics=metrics,
    )
    try:
        result = await notifier.invalidate_api_keys(["0123456789abcdef", "fedcba9876543210"])
    finally:
        await notifier.close()
        for server in key_servers:
            await server.stop(None)
    # 3 stock + 1 confirming of 6: the refusing one stops at its first key, port 1 fails.
    assert (result.updated, result.total) == (4, 6)
    assert key_caches[0].dropped == [("0123456789abcdef", "tkn"), ("fedcba9876543210", "tkn")]
    assert key_caches[1].dropped == [("0123456789abcdef", "tkn")]
    failures = metrics.registry.get_sample_value(
        "milvus_auth_operator_proxy_failures_total", {"rpc": "InvalidateApiKeyCache"}
    )
    assert failures == 2.0
