"""The proxy process: public and internal gRPC servers, the etcd watch, metrics, shutdown.

Start-up order matters: root is bootstrapped, the credential and API key watches are running
and the policy is loaded with its watch running before the public port accepts a call, so no
login, key or privilege is checked against a cache nobody keeps coherent. On SIGTERM
the public port stops accepting, in-flight calls get the grace period, then everything closes.
With `--workers N` (proxy/workers/) each worker runs this with `WorkerPorts`: the public port
shared with the other workers and the internal services on a private address.
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
from milvus_auth.proxy.accesslog import AccessLog, LineWriter
from milvus_auth.proxy.allocator import keep_freed_buffers
from milvus_auth.proxy.authn.apikeys import start_api_keys
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.coherence import Coherence
from milvus_auth.proxy.authn.interceptor import AuthInterceptor
from milvus_auth.proxy.authn.loglimit import FailureLog
from milvus_auth.proxy.authn.ratelimit import FailureLimiter
from milvus_auth.proxy.authz import (
    Bypass,
    ListFilter,
    PolicyCache,
    PolicyCoherence,
    PrivilegeInterceptor,
)
from milvus_auth.proxy.bootstrap import bootstrap_root
from milvus_auth.proxy.config import ProxySettings, warn_about_settings
from milvus_auth.proxy.forwarding import Handler, Upstream, public_message_options
from milvus_auth.proxy.guard import Check, guard
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.proxy.opsconfig import OpsSettings
from milvus_auth.proxy.services.credentials import CredentialService, credential_handlers
from milvus_auth.proxy.services.internal import add_internal_services
from milvus_auth.proxy.services.rbac import RbacService, RbacStores, rbac_handlers
from milvus_auth.proxy.workers.spec import WorkerPorts
from milvus_auth.store import CredentialStore, PolicyStore, watch_policy, watch_users
from milvus_auth.tls import add_port

log = logging.getLogger(__name__)

_PUBLIC_OPTIONS: list[tuple[str, Any]] = [
    # gRPC refuses headers over 8-16 KiB with RESOURCE_EXHAUSTED before any handler runs; an
    # oversized `authorization` must get Milvus's UNAUTHENTICATED like any other bad value.
    ("grpc.max_metadata_size", 256 * 1024),
    ("grpc.absolute_max_metadata_size", 256 * 1024),
]


def _public_options(settings: ProxySettings, *, shared: bool) -> list[tuple[str, Any]]:
    # Two proxies must not silently share a port: only a supervisor's workers share one.
    return [
        *_PUBLIC_OPTIONS,
        ("grpc.so_reuseport", 1 if shared else 0),
        *public_message_options(settings.max_message_size),
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
    `wrappers`, then with the checks of `checks`, in order (authentication first), then by
    `outer` (the access log, which sees the checks' refusals too).
    """

    def __init__(
        self,
        local: Sequence[Mapping[str, Handler]],
        upstream: Upstream,
        checks: Sequence[CheckSource] = (),
        wrappers: Sequence[HandlerWrapper] = (),
        outer: Sequence[HandlerWrapper] = (),
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
        self._outer = tuple(outer)
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
            for wrapper in self._outer:
                handler = wrapper.wrap(method, handler)
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


def _logs(
    ops: OpsSettings, stack: contextlib.AsyncExitStack
) -> tuple[FailureLog, list[HandlerWrapper]]:
    """The failed-login log, and the access log when on; each reports the failed logins it
    suppressed until `stack` closes."""
    failure_log = FailureLog(ops.failed_login_log, logging.getLogger(Authenticator.__module__))
    stack.push_async_callback(_cancel, asyncio.create_task(failure_log.run()))
    if ops.access_log is None:
        return failure_log, []
    access = AccessLog(
        ops.access_log, LineWriter(ops.access_log), failed_logins=ops.failed_login_log
    )
    stack.push_async_callback(_cancel, asyncio.create_task(access.run()))
    return failure_log, [access]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running_proxy(
    settings: ProxySettings, worker: WorkerPorts | None = None
) -> AsyncIterator[RunningProxy]:
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
        ops = settings.ops
        failure_log, outer = _logs(ops, stack)
        authenticator = Authenticator(
            store, limiter=limiter, pool=pool, metrics=metrics, failure_log=failure_log
        )
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
        upstream = Upstream(
            settings.upstream,
            metrics=metrics,
            token=settings.upstream_token,
            tls=ops.upstream_tls,
        )
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
            max_users=common.max_users,
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
                failure_log=failure_log,
            )
            checks.append(AuthInterceptor(authenticator, api_keys))
        if policy is not None:
            bypass = Bypass(settings.root_should_bind_role, settings.super_users)
            checks.append(PrivilegeInterceptor(policy, bypass))
            wrappers.append(ListFilter(policy, root_bound=settings.root_should_bind_role))
        public = grpc.aio.server(options=_public_options(settings, shared=worker is not None))
        public.add_generic_rpc_handlers(
            (
                PublicRouter(
                    [credential_handlers(credentials), rbac_handlers(rbac)],
                    upstream,
                    checks,
                    wrappers,
                    outer,
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
            public_port=add_port(public, f"{settings.host}:{settings.port}", settings.tls),
            internal_port=(
                internal.add_insecure_port(worker.internal_address)
                if worker is not None
                else add_port(
                    internal, f"{settings.internal_host}:{settings.internal_port}", ops.internal_tls
                )
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


async def serve(settings: ProxySettings, worker: WorkerPorts | None = None) -> None:
    """Run the proxy, or one worker of several, until SIGTERM or SIGINT."""
    keep_freed_buffers(settings.max_message_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_proxy(settings, worker) as proxy:
        if worker is None:
            # With workers, the supervisor says this once for all of them.
            warn_about_settings(settings, proxy.internal_port)
        log.info(
            "proxy ready: public %s:%d -> upstream %s, internal %s, auth %s, authz %s, "
            "tls %s, internal tls %s, upstream tls %s, access log %s",
            settings.host,
            proxy.public_port,
            settings.upstream,
            worker.internal_address
            if worker is not None
            else f"{settings.internal_host}:{proxy.internal_port}",
            "on" if settings.auth_enabled else "off",
            "on" if settings.authorization_enabled else "off",
            "on" if settings.tls else "off",
            "on" if settings.ops.internal_tls else "off",
            "on" if settings.ops.upstream_tls else "off",
            settings.ops.access_log.destination if settings.ops.access_log else "off",
        )
        await stop.wait()
        log.info("shutting down: in-flight calls get %.1f s", settings.shutdown_grace)
    log.info("proxy stopped")
