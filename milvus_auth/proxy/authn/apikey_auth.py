"""API-key logins: whether a colon-less token is a live key, and which user it acts as.

A key (`mak_<id>_<secret>`, core/apikeys.py) is looked up by its id in the `ApiKeyCache`; a miss
costs one etcd read, shared by every concurrent call with the same id, and never a bcrypt (the
stored hash is a SHA-256 of a 256-bit random secret, compared in constant time). The proxy
checks expiry itself and that the key's user still exists (known users are cached and kept
coherent by the credential watch), then the caller is that user and authorization applies as
for a password. Every refusal answers Milvus's one API-key text, whatever the cause, is counted
by reason, logged with the key id only (never the key), and spends the same failure budget
per key id and per client address as a wrong password; a rate-limited caller gets no etcd read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from milvus_auth.core import MalformedRecord
from milvus_auth.core.apikeys import API_KEY_FAILURE, KEY_PREFIX, InvalidApiKey, parse_api_key
from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.authn.cache import CredentialCache
from milvus_auth.proxy.authn.headers import AuthFailure
from milvus_auth.proxy.authn.ratelimit import FailureLimiter
from milvus_auth.proxy.authn.singleflight import SingleFlight
from milvus_auth.proxy.authn.verifier import AuthUnavailable, CredentialSource
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import EtcdUnavailable, StoredApiKey

log = logging.getLogger(__name__)


class ApiKeySource(Protocol):
    """Where key records come from (the `ApiKeyStore`)."""

    async def get(self, key_id: str) -> StoredApiKey | None:
        """The record and its revision, or None; raises `EtcdUnavailable`."""


class UsageSink(Protocol):
    """What hears of every accepted use (the `UsageRecorder`)."""

    def note(self, stored: StoredApiKey, now: float) -> None:
        """The key was used at `now` (Unix seconds)."""


def limiter_key(key_id: str) -> str:
    """The failure limiter's name for a key: `mak:<id>`, which no username can equal (no
    username holds a colon), so a key and a user never share a budget."""
    return f"{KEY_PREFIX}:{key_id}"


class ApiKeyAuthenticator:
    """Decides whether an API key is live and returns the username it acts as."""

    def __init__(
        self,
        keys: ApiKeySource,
        users: CredentialSource,
        *,
        cache: ApiKeyCache,
        user_cache: CredentialCache,
        limiter: FailureLimiter,
        metrics: ProxyMetrics,
        usage: UsageSink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self._keys = keys
        self._users = users
        self._user_cache = user_cache
        self._limiter = limiter
        self._metrics = metrics
        self._usage = usage
        self._clock = clock
        self._key_reads: SingleFlight[str, StoredApiKey | None] = SingleFlight()
        self._user_reads: SingleFlight[str, bool] = SingleFlight()
        self._verified = metrics.api_key_results.labels("success", "verified")

    async def authenticate(self, token: str, *, peer: str, method: str) -> str:
        """The username the key in `token` acts as; raise `AuthFailure` or `AuthUnavailable`.

        `method` is only shown in log lines, so the caller passes it escaped and bounded.
        """
        try:
            key = parse_api_key(token)
        except InvalidApiKey:
            # Not a key milvus-auth could have issued: no id to look up, no etcd read, nothing
            # of the token in the log (it may be a password pasted without its username).
            self._fail(None, peer=peer, method=method, reason="malformed")
        key_id = key.key_id
        cache = self.cache
        stored = cache.get(key_id)
        hit = stored is not None and cache.trusted
        if stored is None or not cache.trusted:
            if not self._limiter.allows(limiter_key(key_id), peer):
                self._fail(key_id, peer=peer, method=method, reason="rate_limited")
            stored = await self._fetch(key_id, peer=peer, method=method)
            if stored is None:
                self._refuse(key_id, peer=peer, method=method, reason="unknown_key")
        record = stored.record
        if not record.matches(key):
            self._refuse(key_id, peer=peer, method=method, reason="wrong_secret")
        now = self._clock()
        if record.expired(now):
            self._refuse(key_id, peer=peer, method=method, reason="expired")
        username = record.username
        users = self._user_cache
        known = users.trusted and users.known_user(username)  # the common case: no coroutine
        if not known and not await self._user_exists(username, key_id, peer=peer, method=method):
            self._refuse(key_id, peer=peer, method=method, reason="user_not_found")
        self._usage.note(stored, now)
        (self._metrics.api_key_cached if hit else self._verified).inc()
        return username

    async def _fetch(self, key_id: str, *, peer: str, method: str) -> StoredApiKey | None:
        """The key's record from etcd, one read per key id at a time; while etcd is away, the
        cached entry is the best knowledge left (as for passwords)."""
        try:
            return await self._key_reads.run(key_id, lambda: self._read_key(key_id))
        except EtcdUnavailable as error:
            cached = self.cache.get(key_id)
            if cached is not None:
                return cached
            self._unavailable(key_id, peer=peer, method=method)
            raise AuthUnavailable(f"etcd is unavailable to check API key {key_id}") from error

    async def _read_key(self, key_id: str) -> StoredApiKey | None:
        flight = self.cache.begin(key_id)
        try:
            self._metrics.api_key_reads.labels("key").inc()
            stored = await self._keys.get(key_id)
            if stored is not None:
                self.cache.store_fetched(stored, flight)
            return stored
        finally:
            self.cache.end(key_id, flight)

    async def _user_exists(self, username: str, key_id: str, *, peer: str, method: str) -> bool:
        """Whether etcd holds the user (one read per username at a time); while etcd is away,
        a user seen before is the best knowledge left."""
        cache = self._user_cache
        try:
            return await self._user_reads.run(username, lambda: self._read_user(username))
        except EtcdUnavailable as error:
            if cache.known_user(username):
                return True
            self._unavailable(key_id, peer=peer, method=method)
            raise AuthUnavailable(f"etcd is unavailable to check API key {key_id}") from error

    async def _read_user(self, username: str) -> bool:
        flight = self._user_cache.begin(username)
        try:
            self._metrics.api_key_reads.labels("user").inc()
            try:
                stored = await self._users.get(username)
            except MalformedRecord:
                return False  # a record no login can use makes no caller either
            if stored is None:
                return False
            self._user_cache.store_known(username, stored.mod_revision, flight)
            return True
        finally:
            self._user_cache.end(username, flight)

    def _unavailable(self, key_id: str, *, peer: str, method: str) -> None:
        self._metrics.api_key_results.labels("unavailable", "etcd_unavailable").inc()
        log.warning(
            "api key auth unavailable key=%s peer=%s method=%s reason=etcd_unavailable",
            key_id,
            peer,
            method,
        )

    def _refuse(self, key_id: str, *, peer: str, method: str, reason: str) -> NoReturn:
        self._limiter.record_failure(limiter_key(key_id), peer)
        self._fail(key_id, peer=peer, method=method, reason=reason)

    def _fail(self, key_id: str | None, *, peer: str, method: str, reason: str) -> NoReturn:
        self._metrics.api_key_results.labels("failure", reason).inc()
        log.warning(
            "api key auth failure key=%s peer=%s method=%s reason=%s",
            key_id,
            peer,
            method,
            reason,
        )
        raise AuthFailure(API_KEY_FAILURE, f"api_key_{reason}")
