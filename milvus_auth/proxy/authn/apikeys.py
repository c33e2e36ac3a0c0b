"""API keys in the proxy, started together: the record store, the cache and its etcd watch, the
last-use writer and the authenticator that uses them.

The watch starts from a revision read before anything else here, so every change after the
first record the authenticator could read is seen. Everything stops with the proxy (the
last-use writer first, so it can still write its pending stamps).
"""

from __future__ import annotations

import contextlib

from milvus_auth.config import CommonSettings
from milvus_auth.proxy.authn.apikey_auth import ApiKeyAuthenticator
from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.authn.cache import CredentialCache
from milvus_auth.proxy.authn.coherence import Coherence
from milvus_auth.proxy.authn.ratelimit import FailureLimiter
from milvus_auth.proxy.authn.usage import UsageRecorder
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import ApiKeyStore, CredentialStore, watch_api_keys


async def start_api_keys(
    stack: contextlib.AsyncExitStack,
    common: CommonSettings,
    users: CredentialStore,
    *,
    user_cache: CredentialCache,
    limiter: FailureLimiter,
    metrics: ProxyMetrics,
) -> ApiKeyAuthenticator:
    """Start the API key watch and last-use writer on `stack`; return the authenticator."""
    store = await stack.enter_async_context(ApiKeyStore(common.etcd, common.layout.meta_root))
    cache = ApiKeyCache(store.id_of)
    start = await users.revision() + 1
    coherence = Coherence(
        lambda: watch_api_keys(store, start_revision=start),
        cache.apply,
        cache.distrust,
        name="api-key",
    )
    coherence.start()
    stack.push_async_callback(coherence.stop)
    usage = UsageRecorder(store, cache, metrics)
    usage.start()
    stack.push_async_callback(usage.stop)
    return ApiKeyAuthenticator(
        store,
        users,
        cache=cache,
        user_cache=user_cache,
        limiter=limiter,
        metrics=metrics,
        usage=usage,
    )
