"""The proxy process: public and internal gRPC servers, the etcd watch, metrics, shutdown.

Start-up order matters: root is bootstrapped, the credential and API key watches are running
and the policy is loaded with its watch running before the public port accepts a call, so no
login, key or privilege is checked against a cache nobody keeps coherent. On SIGTERM
the public port stops accepting, in-flight calls get the grace period, then everything closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from milvus_auth.core.grants import RbacLayout
from milvus_auth.proxy.authn.apikeys import start_api_keys
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.coherence import Coherence
from milvus_auth.proxy.authn.interceptor import AuthInterceptor
from milvus_auth.proxy.authn.ratelimit import FailureLimiter
from milvus_auth.proxy.authz import (
    Bypass,
    ListFilter,
    PolicyCache,
    PolicyCoherence,
    PrivilegeInterceptor,
)
from milvus_auth.proxy.bootstrap import bootstrap_root
from milvus_auth.proxy.config import ProxySettings, internal_port_open
from milvus_auth.proxy.forwarding import CHANNEL_OPTIONS, Handler, Upstream
from milvus_auth.proxy.guard import Check, guard
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.proxy.services.credentials import CredentialService, credential_handlers
from milvus_auth.proxy.services.internal import add_internal_services
from milvus_auth.proxy.services.rbac import RbacService, RbacStores, rbac_handlers
from milvus_auth.store import CredentialStore, PolicyStore, watch_policy, watch_users

log = logging.getLogger(__name__)

_PUBLIC_OPTIONS: list[tuple[str, Any]] = [
    *CHANNEL_OPTIONS,
    # Two proxies must not silently share a port.
    ("grpc.so_reuseport", 0),
    # gRPC refuses headers over 8-16 KiB with RESOURCE_EXHAUSTED before any handler runs; an
    # oversized `authorization` must get Milvus's UNAUTHENTICATED like any other bad value.
    ("grpc.max_metadata_size", 256 * 1024),
    ("grpc.absolute_max_metadata_size", 256 * 1024),
]


class NoPolicyCache:
    """The refresher when authorization is off: no policy is cached, so none is reloaded."""

    async def refresh(self) -> None:
        """Nothing to reload."""


class CheckSource(Protocol):
    """Something that checks calls before their handler runs (authentication, privileges)."""

    def check_for(self, method: str) -> Check | None:
        """The check for `method`, or None when it has nothing to check there."""


class HandlerWrapper(Protocol):
    """Something that changes what a method's handler does (list filtering)."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler`, changed or not."""


class PublicRouter(grpc.GenericRpcHandler):
    """The proxy's own services (`local`, any number of handler maps) answer their methods,
    every other method goes to the upstream Milvus; each handler is wrapped once by
    `wrappers`, then with the checks of `checks`, in order (authentication first).
    """

    def __init__(
        self,
        local: Sequence[Mapping[str, Handler]],
        upstream: Upstream,
        checks: Sequence[CheckSource] = (),
        wrappers: Sequence[HandlerWrapper] = (),
    ) -> None:
        self._local: dict[str, Handler] = {}
        for handlers in local:
            overlap = self._local.keys() & handlers.keys()
            if overlap:
                raise ValueError(f"methods served twice: {sorted(overlap)}")
            self._local.update(handlers)
        self._upstream = upstream
        self._checks = tuple(checks)
        self._wrappers = tuple(wrappers)
        self._handlers: dict[str, Handler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._local.get(method) or self._upstream.handler(method)
            for wrapper in self._wrappers:
                handler = wrapper.wrap(method, handler)
            found = (source.check_for(method) for source in self._checks)
            handler = guard(handler, [check for check in found if check is not None])
            if method in self._local or self._upstream.known(method):
                # Cached only for real methods, so random paths cannot grow the table.
                self._handlers[method] = handler
        return handler


@dataclass(frozen=True)
class RunningProxy:
    """The started servers and the ports they listen on (the real ones, when given 0)."""

    public: grpc.aio.Server
    internal: grpc.aio.Server
    public_port: int
    internal_port: int


def _add_port(server: grpc.aio.Server, address: str, settings: ProxySettings) -> int:
    tls = settings.tls
    if tls is None:
        return server.add_insecure_port(address)
    credentials = grpc.ssl_server_credentials(
        [(tls.private_key, tls.certificate)],
        root_certificates=tls.client_ca,
        require_client_auth=tls.client_ca is not None,
    )
    return server.add_secure_port(address, credentials)


@contextlib.asynccontextmanager
async def running_proxy(settings: ProxySettings) -> AsyncIterator[RunningProxy]:
    """Start everything; on exit, stop accepting and give in-flight calls the grace period."""
    metrics = ProxyMetrics()
    common = settings.common
    grace = settings.shutdown_grace
    # Closed in reverse: public port, internal port, upstream, watch, bcrypt threads, etcd.
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(CredentialStore(common.etcd, common.layout))
        pool = BcryptPool(cost=common.bcrypt_cost, metrics=metrics)
        stack.callback(pool.close)
        limiter = FailureLimiter(settings.rate_limits)
        authenticator = Authenticator(store, limiter=limiter, pool=pool, metrics=metrics)
        coherence = Coherence.of_credentials(lambda: watch_users(store), authenticator.cache)
        # Started before the bootstrap's etcd round trips, so the watch has taken its start
        # revision before the public port verifies a login: nothing cached predates it.
        coherence.start()
        stack.push_async_callback(coherence.stop)
        await bootstrap_root(
            store,
            password=settings.root_password,
            auth_enabled=settings.auth_enabled,
            bcrypt_cost=common.bcrypt_cost,
            password_policy=common.password_policy,
        )
        policy_store = await stack.enter_async_context(
            PolicyStore(common.etcd, RbacLayout(common.layout.meta_root))
        )
        policy: PolicyCache | None = None
        if settings.authorization_enabled:
            policy = PolicyCache(policy_store)
            policy_coherence = PolicyCoherence(
                policy, lambda start: watch_policy(policy_store, start_revision=start)
            )
            await policy_coherence.start()
            stack.push_async_callback(policy_coherence.stop)
        upstream = Upstream(settings.upstream, metrics=metrics, token=settings.upstream_token)
        stack.push_async_callback(upstream.close)
        credentials = CredentialService(
            store,
            authenticator,
            pool=pool,
            super_users=settings.super_users,
            bcrypt_cost=common.bcrypt_cost,
            password_policy=common.password_policy,
            auth_enabled=settings.auth_enabled,
            admin_check=policy is None,
        )
        rbac = RbacService(RbacStores(policy_store, store, policy or NoPolicyCache()))
        await rbac.roles.ensure_default_roles()
        checks: list[CheckSource] = []
        wrappers: list[HandlerWrapper] = []
        api_keys = None
        if settings.auth_enabled:
            api_keys = await start_api_keys(
                stack,
                common,
                store,
                user_cache=authenticator.cache,
                limiter=limiter,
                metrics=metrics,
            )
            checks.append(AuthInterceptor(authenticator, api_keys))
        if policy is not None:
            bypass = Bypass(settings.root_should_bind_role, settings.super_users)
            checks.append(PrivilegeInterceptor(policy, bypass))
            wrappers.append(ListFilter(policy, root_bound=settings.root_should_bind_role))
        public = grpc.aio.server(options=_PUBLIC_OPTIONS)
        public.add_generic_rpc_handlers(
            (
                PublicRouter(
                    [credential_handlers(credentials), rbac_handlers(rbac)],
                    upstream,
                    checks,
                    wrappers,
                ),
            )
        )
        internal = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        add_internal_services(
            internal,
            authenticator.cache,
            token=settings.internal_token,
            revisions=store,
            policy=policy,
            api_keys=None if api_keys is None else api_keys.cache,
        )
        proxy = RunningProxy(
            public=public,
            internal=internal,
            public_port=_add_port(public, f"{settings.host}:{settings.port}", settings),
            internal_port=internal.add_insecure_port(
                f"{settings.internal_host}:{settings.internal_port}"
            ),
        )
        if settings.metrics_port:
            metrics.serve(settings.host, settings.metrics_port)
        await internal.start()
        # Cache RPCs are short; a probe's health stream must not add a second grace period.
        stack.push_async_callback(internal.stop, min(grace, 1.0))
        await public.start()
        stack.push_async_callback(public.stop, grace)
        yield proxy


async def serve(settings: ProxySettings) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_proxy(settings) as proxy:
        if internal_port_open(settings.internal_host, settings.internal_token):
            log.warning(
                "insecure internal port %s:%d (--insecure-internal-port): it has no token, so "
                "anyone who reaches it can make any password work for any user",
                settings.internal_host,
                proxy.internal_port,
            )
        if settings.auth_enabled and not settings.authorization_enabled:
            log.warning(
                "authorization is off (--authorization-enabled false): every authenticated "
                "user may call every method, unlike a Milvus with authentication on"
            )
        log.info(
            "proxy ready: public %s:%d -> upstream %s, internal %s:%d, auth %s, authz %s, tls %s",
            settings.host,
            proxy.public_port,
            settings.upstream,
            settings.internal_host,
            proxy.internal_port,
            "on" if settings.auth_enabled else "off",
            "on" if settings.authorization_enabled else "off",
            "on" if settings.tls else "off",
        )
        await stop.wait()
        log.info("shutting down: in-flight calls get %.1f s", settings.shutdown_grace)
    log.info("proxy stopped")
