"""The one place that builds aetcd clients: TLS, etcd auth, timeouts and member failover.

aetcd only opens plaintext channels, so `_Client` overrides `connect` to open a TLS channel
when certificates are configured; everything else is aetcd's own code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Self, TypeVar

import aetcd
import grpc
from aetcd import rpc, watcher

from milvus_auth.store.errors import EtcdUnavailable
from milvus_auth.store.settings import Endpoint, EtcdSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

_CHANNEL_OPTIONS = {
    # Detect a dead member under an open watch stream within about 20 s. No pings without
    # calls: etcd does not permit them and answers repeated ones by closing the connection.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 10_000,
}


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with an optional TLS channel."""

    def __init__(self, endpoint: Endpoint, settings: EtcdSettings) -> None:
        super().__init__(
            host=endpoint.host,
            port=endpoint.port,
            username=settings.user,
            password=settings.password,
            timeout=settings.timeout,
            options=dict(_CHANNEL_OPTIONS),
        )
        self._credentials = _channel_credentials(settings) if settings.uses_tls else None

    async def connect(self) -> None:
        if self._credentials is None:
            await super().connect()
            return
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        self.channel = rpc.secure_channel(target, self._credentials, options=self._options.items())
        if self._username is not None:
            self.auth_stub = rpc.AuthStub(self.channel)
            request = rpc.AuthenticateRequest(name=self._username, password=self._password)
            response = await self.auth_stub.Authenticate(request, timeout=self._timeout)
            self.metadata = (("token", response.token),)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(
            rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
        )
        self._connected.set()


def _channel_credentials(settings: EtcdSettings) -> grpc.ChannelCredentials:
    def read(path: object) -> bytes | None:
        return None if path is None else open(str(path), "rb").read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.ca_file),
        private_key=read(settings.key_file),
        certificate_chain=read(settings.cert_file),
    )


class EtcdConnection:
    """A client for the current etcd member; on failure, the next call tries the next member."""

    def __init__(self, settings: EtcdSettings) -> None:
        if not settings.endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self.settings = settings
        self._index = 0
        self._client: _Client | None = None

    @property
    def endpoint(self) -> Endpoint:
        """The member the next call goes to."""
        return self.settings.endpoints[self._index]

    def client(self) -> aetcd.Client:
        """The client for the current member, created on first use."""
        if self._client is None:
            self._client = _Client(self.endpoint, self.settings)
        return self._client

    async def call(self, operation: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run one etcd operation with the timeout; map every transport failure to one error."""
        client, endpoint = self.client(), self.endpoint
        try:
            return await asyncio.wait_for(operation(client), self.settings.timeout)
        except (TimeoutError, aetcd.ClientError, grpc.RpcError, OSError) as error:
            await self.fail_over()
            raise EtcdUnavailable(
                f"etcd at {endpoint} is unavailable: {_describe(error)}"
            ) from error

    async def fail_over(self) -> None:
        """Drop the current client; the next call connects to the next member."""
        client, self._client = self._client, None
        self._index = (self._index + 1) % len(self.settings.endpoints)
        if client is not None:
            await _close_quietly(client)

    async def close(self) -> None:
        """Close the current client."""
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)


def _describe(error: BaseException) -> str:
    # etcd's own error details (e.g. "etcdserver: authentication failed") never echo secrets.
    detail = str(error).strip()
    if isinstance(error, TimeoutError) or not detail:
        return f"no answer ({type(error).__name__})"
    return detail.splitlines()[0][:200]


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await asyncio.wait_for(client.close(), 2.0)
    except (TimeoutError, aetcd.ClientError, grpc.RpcError, OSError) as error:
        log.debug("closing an etcd client failed: %s", type(error).__name__)


class ConnectedStore:
    """A store owning one `EtcdConnection`: an async context manager that closes it."""

    connection: EtcdConnection

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the etcd connection."""
        await self.connection.close()
