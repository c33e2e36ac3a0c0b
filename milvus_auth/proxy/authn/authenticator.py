"""The authenticator: whether a username and password are right, as cheaply as Milvus's cache.

It composes the credential cache (cache.py: digests kept coherent by the etcd watch), the
single-flight verifier (verifier.py: etcd read and bcrypt, shared by concurrent misses) and
the failure limiter (ratelimit.py). A cache hit costs one sha256 and a constant-time compare.
Wrong passwords are never cached, and failed attempts are rate-limited before bcrypt. Every
refusal of a 1..72-byte password that is not rate-limited costs one bcrypt, whether the user
exists, has an unreadable record or is cached with another password, so the time of a refusal
does not tell which usernames exist.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from milvus_auth.core import cache_digest, digests_equal
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.cache import CredentialCache
from milvus_auth.proxy.authn.headers import AUTH_CHECK_FAILURE, AuthFailure, Credentials
from milvus_auth.proxy.authn.ratelimit import FailureLimiter
from milvus_auth.proxy.authn.refusals import RefusalReporter
from milvus_auth.proxy.authn.verifier import (
    AuthUnavailable,
    CredentialSource,
    SingleFlightVerifier,
    Verdict,
)
from milvus_auth.proxy.logsafe import shown_username, valid_username
from milvus_auth.proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

MAX_PASSWORD_BYTES = 72  # bcrypt cannot check longer passwords; Milvus never stores them


class Authenticator:
    """Decides whether a username and password are right (`cache` is the credential cache)."""

    def __init__(
        self,
        store: CredentialSource,
        *,
        limiter: FailureLimiter,
        pool: BcryptPool,
        metrics: ProxyMetrics,
        cache: CredentialCache | None = None,
    ) -> None:
        self.cache = cache or CredentialCache()
        self._limiter = limiter
        self._pool = pool
        self._metrics = metrics
        self._refusals = RefusalReporter(metrics)
        self._verifier = SingleFlightVerifier(store, cache=self.cache, pool=pool)

    async def authenticate(self, credentials: Credentials, *, peer: str, method: str) -> None:
        """Return if the credentials are right; raise `AuthFailure` or `AuthUnavailable`.

        `method` is only shown in log lines, so the caller passes it escaped and bounded.
        """
        username = credentials.username
        if not valid_username(username):
            # No user can have this name: refused before the cache, the limiter or etcd see it,
            # so an unbounded name costs no memory and no etcd read, and a log line never
            # shows it (it may be a password typed into the user field).
            self._fail(credentials, peer=peer, method=method, reason="invalid_username")
        digest = cache_digest(username, credentials.password)
        cache = self.cache
        entry = cache.entry(username)
        if entry is not None and cache.trusted and digests_equal(entry.digest, digest):
            self._metrics.cache_hit.inc()
            self._metrics.auth_cached.inc()
            return
        if not self._limiter.allows(username, peer):
            self._fail(credentials, peer=peer, method=method, reason="rate_limited")
        if entry is not None and cache.trusted:
            # The watch keeps entries current, so another password is wrong; etcd need not be
            # asked, but a bcrypt is spent all the same so the refusal takes as long as any
            # other (counted first: a concurrent flood must meet the limit before its bcrypts).
            self._metrics.cache_hit.inc()
            self._limiter.record_failure(username, peer)
            await self._pool.verify_nobody(credentials.password)
            self._fail(credentials, peer=peer, method=method, reason="wrong_password")
        self._metrics.cache_miss.inc()
        if not credentials.password or len(credentials.password.encode()) > MAX_PASSWORD_BYTES:
            self._refuse(credentials, peer=peer, method=method, reason="wrong_password")
        led = self._verifier.leads(username, digest)
        if led:
            # Counted as a failure when the check starts, not when it ends: otherwise a flood
            # starts hundreds of bcrypts before its first failure is counted. A success (or an
            # etcd outage) gives the token back when the check lands.
            self._limiter.record_failure(username, peer)
        try:
            verdict = await self._verifier.verify(
                username,
                digest,
                credentials.password,
                lambda: self._limiter.refund(username, peer),
            )
        except AuthUnavailable:
            self._metrics.auth_results.labels("unavailable", "etcd_unavailable").inc()
            log.warning(
                "auth unavailable user=%s peer=%s method=%s reason=etcd_unavailable",
                shown_username(username),
                peer,
                method,
            )
            raise
        if verdict is not Verdict.VERIFIED:
            if not led:  # the leader's attempt was counted when its check started
                self._limiter.record_failure(username, peer)
            self._fail(credentials, peer=peer, method=method, reason=verdict.value)
        self._metrics.auth_results.labels("success", "verified").inc()

    async def check_password(
        self, username: str, password: str, hashed: str | None, *, peer: str
    ) -> bool:
        """Whether `password` matches the bcrypt `hashed` (None: the user has no record), under
        the same failure limits and in the same bcrypt pool as a login; False at once when the
        limits refuse (a password change proving the old password, for example)."""
        if not self._limiter.allows(username, peer):
            return False
        self._limiter.record_failure(username, peer)  # before the bcrypt, as for a login
        if hashed is None:
            await self._pool.verify_nobody(password)
            return False
        if not await self._pool.verify(password, hashed):
            return False
        self._limiter.refund(username, peer)
        return True

    def invalidate(self, username: str) -> None:
        """Forget the user at once (after this proxy changed its record)."""
        self.cache.invalidate(username)

    def header_refused(self, failure: AuthFailure, *, peer: str, method: str) -> None:
        """Count and log a call refused before any username was known (bad or no header)."""
        self._refusals.refused(username=None, peer=peer, method=method, reason=failure.reason)

    def _refuse(self, credentials: Credentials, *, peer: str, method: str, reason: str) -> NoReturn:
        self._limiter.record_failure(credentials.username, peer)
        self._fail(credentials, peer=peer, method=method, reason=reason)

    def _fail(self, credentials: Credentials, *, peer: str, method: str, reason: str) -> NoReturn:
        self._refusals.refused(
            username=credentials.username, peer=peer, method=method, reason=reason
        )
        raise AuthFailure(AUTH_CHECK_FAILURE, reason)
