"""The internal port: Milvus's cache RPCs (`milvus.proto.proxy.Proxy`) and gRPC health.

A stock Milvus RootCoord, or the milvus-auth operator, writes etcd and then calls every proxy:
`UpdateCredentialCache` pre-warms the cache with the digest it carries (sha256 of password +
username), `InvalidateCredentialCache` and `RefreshPolicyInfoCache{opType=5 DeleteUser}` drop
a user, and `RefreshPolicyInfoCache` ops 1-7 change the policy cache as they change Milvus's
(with authorization off they are accepted and change nothing but op 5's credential entry).
Because a pre-warmed digest is what the cache accepts, this port must never be exposed
outside the cluster; with `--internal-token-file` every cache RPC must also carry the token in
the `milvus-auth-internal-token` metadata. `grpc.health.v1.Health` is exempt from the token:
Kubernetes' gRPC probes cannot send metadata, and health reveals nothing.

milvus-auth's own `milvus_auth.v1.ApiKeyCache/InvalidateApiKeyCache` (apikeys.proto) sits beside
them under the same token: it drops one API key from the cache, so its next use reads etcd (the
operator calls it after revoking or rotating a key; the etcd watch would catch up within a
moment anyway). A stock Milvus proxy answers it UNIMPLEMENTED.

The record revision a milvus-auth operator attaches to `UpdateCredentialCache` lets the entry
outlive the watch event of that same write; a revision etcd has not reached yet cannot belong
to any write, so it is refused (an entry tagged 10^18 would otherwise outlive every change).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core import InvalidParameter, validate_username
from milvus_auth.core.apikeys import is_key_id
from milvus_auth.core.errors import MilvusError
from milvus_auth.core.internal import (
    API_KEY_CACHE_SERVICE,
    INTERNAL_TOKEN_METADATA,
    RECORD_REVISION_PROPERTY,
)
from milvus_auth.core.roles import CacheOp, CacheRefresh, parse_cache_refresh
from milvus_auth.protos import apikeys_pb2, proxy_pb2
from milvus_auth.proxy.errors import StoreUnavailable, failure_status
from milvus_auth.proxy.logsafe import shown_text, shown_username
from milvus_auth.store import EtcdUnavailable

log = logging.getLogger(__name__)

SERVICE = "milvus.proto.proxy.Proxy"
_DIGEST = re.compile(r"[0-9a-f]{64}")

Context = grpc.aio.ServicerContext[Any, Any]


class CredentialCache(Protocol):
    """What the cache RPCs change: the authenticator's username -> digest cache."""

    def prewarm(self, username: str, digest: str, revision: int | None = None) -> None:
        """Accept `digest` (sha256hex(password + username)) for the user from now on."""

    def invalidate(self, username: str) -> None:
        """Forget whatever the cache holds for the user."""


class ApiKeyCacheOps(Protocol):
    """What InvalidateApiKeyCache changes: the API key cache."""

    def invalidate(self, key_id: str) -> None:
        """Forget the key; its next use reads etcd."""


class RevisionSource(Protocol):
    """Where the newest etcd revision comes from (the `CredentialStore`)."""

    async def revision(self) -> int:
        """etcd's current revision; raises `EtcdUnavailable`."""


class PolicyOps(Protocol):
    """What `RefreshPolicyInfoCache` changes: the policy cache (`authz.PolicyCache`)."""

    async def apply(self, op: CacheRefresh) -> None:
        """Apply one op as Milvus's proxy does; raises `MilvusError` or `EtcdUnavailable`."""


class RevisionAhead(InvalidParameter):
    """A record revision etcd has not reached: forged, or from another etcd."""

    def __init__(self, revision: int, current: int) -> None:
        super().__init__(
            f"{RECORD_REVISION_PROPERTY} {revision} is ahead of etcd's revision {current}"
        )


class CacheService:
    """The three cache RPCs; each answers a `common.Status` as Milvus's proxy does."""

    def __init__(
        self, cache: CredentialCache, revisions: RevisionSource, policy: PolicyOps | None
    ) -> None:
        self._cache = cache
        self._revisions = revisions
        self._policy = policy

    async def invalidate(self, request: Any, _: Context) -> common_pb2.Status:
        """InvalidateCredentialCache: drop the user."""
        username = validate_username(request.username)
        self._cache.invalidate(username)
        log.info("cache invalidate user=%s result=ok", shown_username(username))
        return common_pb2.Status()

    async def update(self, request: Any, _: Context) -> common_pb2.Status:
        """UpdateCredentialCache: pre-warm the user with the digest RootCoord computed."""
        username = validate_username(request.username)
        if not _DIGEST.fullmatch(request.password):
            raise InvalidParameter(
                "invalid credential cache value", "expected sha256 hex of password + username"
            )
        revision = _record_revision(request.base.properties.get(RECORD_REVISION_PROPERTY, ""))
        if revision is not None:
            # Read after the writer's write, so a genuine revision is never ahead of it.
            current = await self._revisions.revision()
            if revision > current:
                raise RevisionAhead(revision, current)
        self._cache.prewarm(username, request.password, revision)
        log.info("cache prewarm user=%s revision=%s result=ok", shown_username(username), revision)
        return common_pb2.Status()

    async def refresh_policy(self, request: Any, _: Context) -> common_pb2.Status:
        """RefreshPolicyInfoCache: ops 1-7 on the policy cache; op 5 also drops the user's
        credential entry."""
        op = parse_cache_refresh(request.opType, request.opKey)
        if op.op is CacheOp.DELETE_USER:
            username = validate_username(op.key)
            self._cache.invalidate(username)
        if self._policy is not None:
            await self._policy.apply(op)
        log.info("cache policy-refresh op=%d result=ok", int(op.op))
        return common_pb2.Status()


class ApiKeyCacheService:
    """InvalidateApiKeyCache: drop one key by its public id."""

    def __init__(self, cache: ApiKeyCacheOps) -> None:
        self._cache = cache

    async def invalidate(self, request: Any, _: Context) -> common_pb2.Status:
        """Drop the key (a key the cache does not hold is no error)."""
        key_id = request.key_id
        if not is_key_id(key_id):
            raise InvalidParameter("invalid API key id", "expected 16 lowercase hex digits")
        self._cache.invalidate(key_id)
        log.info("cache invalidate api_key=%s result=ok", key_id)
        return common_pb2.Status()


Behaviour = Callable[[Any, Context], Awaitable[common_pb2.Status]]
Methods = dict[str, tuple[Behaviour, Callable[[bytes], Any]]]


def _record_revision(text: str) -> int | None:
    """The revision a milvus-auth operator attached, or None (stock RootCoord sends none)."""
    if not text:
        return None
    if not text.isdigit():
        raise InvalidParameter(
            f"invalid {RECORD_REVISION_PROPERTY} {text!r}", "expected an etcd revision"
        )
    return int(text)


def _guarded(behaviour: Behaviour, token: str | None) -> Behaviour:
    """Check the internal token, then turn domain and etcd errors into a failed `common.Status`;
    a forged revision is logged as an error, other refusals as warnings."""
    expected = token.encode() if token is not None else None

    async def handler(request: Any, context: Context) -> common_pb2.Status:
        if expected is not None:
            await _check_token(context, expected)
        try:
            return await behaviour(request, context)
        except EtcdUnavailable as error:
            failed: MilvusError = StoreUnavailable(str(error))
        except MilvusError as error:
            failed = error
        level = logging.ERROR if isinstance(failed, RevisionAhead) else logging.WARNING
        log.log(
            level, "cache rpc refused peer=%s reason=%s", context.peer(), shown_text(failed.reason)
        )
        # merr.Status, as for the proxy-side credential checks: parameter errors carry the
        # legacy IllegalArgument, everything else UnexpectedError.
        return failure_status(failed, common_pb2.ErrorCode.UnexpectedError)

    return handler


async def _check_token(context: Context, expected: bytes) -> None:
    sent = [
        value
        for key, value in context.invocation_metadata() or ()
        if key == INTERNAL_TOKEN_METADATA
    ]
    if not sent:
        log.warning("cache rpc refused reason=missing_internal_token peer=%s", context.peer())
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, f"missing {INTERNAL_TOKEN_METADATA} in metadata"
        )
    value = sent[0]
    given = value if isinstance(value, bytes) else value.encode()
    if not hmac.compare_digest(given, expected):
        log.warning("cache rpc refused reason=wrong_internal_token peer=%s", context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid internal token")


def add_internal_services(
    server: grpc.aio.Server,
    authenticator: CredentialCache,
    *,
    token: str | None,
    revisions: RevisionSource,
    policy: PolicyOps | None = None,
    api_keys: ApiKeyCacheOps | None = None,
) -> None:
    """Register Milvus's cache service, the API key cache service when there is an API key
    cache (both token-checked when `token` is set) and gRPC health."""
    if token == "":
        raise ValueError("an empty internal token would accept calls without one")
    service = CacheService(authenticator, revisions, policy)
    methods: Methods = {
        "InvalidateCredentialCache": (
            service.invalidate,
            proxy_pb2.InvalidateCredCacheRequest.FromString,
        ),
        "UpdateCredentialCache": (service.update, proxy_pb2.UpdateCredCacheRequest.FromString),
        "RefreshPolicyInfoCache": (
            service.refresh_policy,
            proxy_pb2.RefreshPolicyInfoCacheRequest.FromString,
        ),
    }
    services = {SERVICE: methods}
    if api_keys is not None:
        services[API_KEY_CACHE_SERVICE] = {
            "InvalidateApiKeyCache": (
                ApiKeyCacheService(api_keys).invalidate,
                apikeys_pb2.InvalidateApiKeyCacheRequest.FromString,
            )
        }
    server.add_generic_rpc_handlers(
        tuple(_generic_handler(name, found, token) for name, found in services.items())
    )
    # The default HealthServicer reports the overall service "" as SERVING from the start.
    health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)


def _generic_handler(service: str, methods: Methods, token: str | None) -> grpc.GenericRpcHandler:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(behaviour, token),
            request_deserializer=deserialize,
            response_serializer=common_pb2.Status.SerializeToString,
        )
        for name, (behaviour, deserialize) in methods.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)
