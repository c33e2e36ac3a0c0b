"""Push cache changes to every proxy: Milvus's own `UpdateCredentialCache` and
`RefreshPolicyInfoCache` fan-out, and milvus-auth's `InvalidateApiKeyCache`, concurrently.

Proxies are the ready endpoints of the EndpointSlices of one Service (port named `internal`),
so stock Milvus proxies (internal port 19529) and milvus-auth proxies are notified alike. Only
slices made by Kubernetes' EndpointSlice controller count: anyone who may create an
EndpointSlice can give it the Service's name label, and the calls carry the internal token and
password digests. The digest travels only in the RPC; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, RECORD_REVISION_PROPERTY
from milvus_auth.operator.config import ServiceRef
from milvus_auth.operator.kube import JsonObject, KubeClient
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.protos import apikeys_pb2, apikeys_pb2_grpc, proxy_pb2, proxy_pb2_grpc
from milvus_auth.tls import ClientTls
from milvus_auth.tls import channel as connect

log = logging.getLogger(__name__)
INTERNAL_PORT_NAME = "internal"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
REFRESH_OP = 7  # typeutil.CacheRefresh


@dataclass(frozen=True)
class FanOut:
    """How many proxies confirmed a change, of how many were asked."""

    updated: int
    total: int

    @property
    def complete(self) -> bool:
        """Every proxy confirmed (vacuously true without proxies)."""
        return self.updated == self.total


class Notifier(Protocol):
    """What reconciles need from the proxy fan-out; tests may substitute their own."""

    async def update(self, username: str, digest: str, *, revision: int | None) -> FanOut:
        """Set the user's cache entry on every proxy; `revision` is the record's etcd revision."""
        ...

    async def invalidate(self, username: str) -> FanOut:
        """Drop the user's cache entry on every proxy."""
        ...

    async def refresh_policy(self) -> FanOut:
        """Make every proxy re-read all roles, mappings and grants."""
        ...


def ready_endpoints(slices: list[JsonObject], service: ServiceRef) -> list[str]:
    """`host:port` of every ready endpoint of the Service's `internal` port, sorted, unique;
    only from slices the EndpointSlice controller manages for that Service."""
    found: set[str] = set()
    for item in slices:
        labels = (item.get("metadata") or {}).get("labels") or {}
        # Checked here too: a server that ignores label selectors must not add other pods.
        if labels.get(SERVICE_NAME_LABEL) != service.name:
            continue
        if labels.get(MANAGED_BY_LABEL) != CONTROLLER:
            continue  # hand-made or another controller's: not proof the pods back the Service
        ports = [
            p.get("port") for p in item.get("ports") or [] if p.get("name") == INTERNAL_PORT_NAME
        ]
        for endpoint in item.get("endpoints") or []:
            # A missing `ready` means ready (EndpointSlice API); `False` means not serving.
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in str(address) else str(address)
                found.update(f"{host}:{port}" for port in ports if isinstance(port, int))
    return sorted(found)


class ProxyNotifier:
    """Finds the proxies on every call (pods come and go) and keeps one channel per proxy."""

    def __init__(
        self,
        *,
        kube: KubeClient,
        service: ServiceRef | None,
        token: str | None,
        timeout: float,
        metrics: OperatorMetrics,
        tls: ClientTls | None = None,
    ) -> None:
        self.kube = kube
        self._tls = tls
        self.service = service
        self.timeout = timeout
        self.metrics = metrics
        self._metadata = ((INTERNAL_TOKEN_METADATA, token),) if token else None
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def endpoints(self) -> list[str]:
        """The proxies to notify now."""
        if self.service is None:
            return []
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.service.namespace}/endpointslices"
        selector = f"{SERVICE_NAME_LABEL}={self.service.name},{MANAGED_BY_LABEL}={CONTROLLER}"
        slices = await self.kube.list(path, label_selector=selector)
        return ready_endpoints(slices, self.service)

    async def update(self, username: str, digest: str, *, revision: int | None) -> FanOut:
        """UpdateCredentialCache on every proxy, tagged with the record's etcd revision (stock
        Milvus proxies ignore the tag; milvus-auth proxies keep the entry through the watch
        event of that same write)."""
        tag = {} if revision is None else {RECORD_REVISION_PROPERTY: str(revision)}
        request = proxy_pb2.UpdateCredCacheRequest(
            base=common_pb2.MsgBase(properties=tag), username=username, password=digest
        )
        return await self._fan_out(
            "UpdateCredentialCache", lambda s: s.UpdateCredentialCache, request
        )

    async def invalidate(self, username: str) -> FanOut:
        """InvalidateCredentialCache on every proxy."""
        request = proxy_pb2.InvalidateCredCacheRequest(username=username)
        return await self._fan_out(
            "InvalidateCredentialCache", lambda s: s.InvalidateCredentialCache, request
        )

    async def refresh_policy(self) -> FanOut:
        """RefreshPolicyInfoCache{opType: 7 CacheRefresh} on every proxy.

        The full refresh, not the fine-grained ops 1-4 and 6: its key is empty, so it means
        the same to every Milvus version (2.3/2.4 proxies take one policy per op 3/4 key, 2.5+
        several joined by `|`, group-expanded), it carries the effect of a custom group's
        members without expanding them here, and a refresh that arrives late still leaves the
        proxy with the newest state rather than replaying an old delta.
        """
        request = proxy_pb2.RefreshPolicyInfoCacheRequest(opType=REFRESH_OP, opKey="")
        return await self._fan_out(
            "RefreshPolicyInfoCache", lambda s: s.RefreshPolicyInfoCache, request
        )

    async def invalidate_api_keys(self, key_ids: Sequence[str]) -> FanOut:
        """InvalidateApiKeyCache of each key on every proxy; a proxy counts as updated when it
        confirmed every key. A stock Milvus proxy answers UNIMPLEMENTED: it holds no API keys,
        so that confirms too."""
        requests = [apikeys_pb2.InvalidateApiKeyCacheRequest(key_id=key) for key in key_ids]
        return await self._fan_out(
            "InvalidateApiKeyCache",
            lambda s: s.InvalidateApiKeyCache,
            *requests,
            stub=apikeys_pb2_grpc.ApiKeyCacheStub,
            unimplemented_ok=True,
        )

    async def _fan_out(
        self,
        rpc: str,
        method: Callable[[Any], Callable[..., Awaitable[Any]]],
        *requests: Any,
        stub: Callable[[grpc.aio.Channel], Any] = proxy_pb2_grpc.ProxyStub,
        unimplemented_ok: bool = False,
    ) -> FanOut:
        started = time.perf_counter()
        targets = await self.endpoints()
        for gone in set(self._channels) - set(targets):
            await self._drop(gone)  # pods come and go: keep channels only to current proxies

        async def confirm(target: str) -> bool:
            for request in requests:
                if not await self._call(
                    target, rpc, method, request, stub=stub, unimplemented_ok=unimplemented_ok
                ):
                    return False
            return True

        results = await asyncio.gather(*(confirm(t) for t in targets))
        self.metrics.fanout_seconds.labels(rpc).observe(time.perf_counter() - started)
        return FanOut(updated=sum(results), total=len(targets))

    async def _call(
        self,
        target: str,
        rpc: str,
        method: Callable[[Any], Callable[..., Awaitable[Any]]],
        request: Any,
        *,
        stub: Callable[[grpc.aio.Channel], Any],
        unimplemented_ok: bool,
    ) -> bool:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = connect(target, self._tls)
        try:
            status = await method(stub(channel))(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
            if unimplemented_ok and code is grpc.StatusCode.UNIMPLEMENTED:
                return True  # a proxy without the service (stock Milvus) holds nothing to drop
            log.warning("%s on proxy %s failed: %s", rpc, target, code)
            # A fresh channel next time: the old one may sit in reconnect backoff for long.
            await self._drop(target)
            self.metrics.proxy_failures.labels(rpc).inc()
            return False
        if status.error_code != 0 or status.code != 0:
            log.warning(
                "%s on proxy %s refused: code %s", rpc, target, status.code or status.error_code
            )
            self.metrics.proxy_failures.labels(rpc).inc()
            return False
        return True

    async def _drop(self, target: str) -> None:
        channel = self._channels.pop(target, None)
        if channel is not None:
            await channel.close()

    async def close(self) -> None:
        """Close every channel."""
        for target in list(self._channels):
            await self._drop(target)
