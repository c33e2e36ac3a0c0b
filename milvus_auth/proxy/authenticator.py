"""The authenticator: Milvus's sha256 credential cache, made coherent, concurrent and cheap.

A cache hit costs one sha256 and a constant-time compare. A miss reads etcd and runs bcrypt in
a small thread pool (never on the event loop); concurrent misses for the same username and
password share one verification (single flight). Wrong passwords are never cached, and failed
attempts are rate-limited before bcrypt. Every refusal of a 1..72-byte password that is not
rate-limited costs one bcrypt, whether the user exists, has an unreadable record or is cached
with another password, so the time of a refusal does not tell which usernames exist. The etcd
watch (coherence.py) drops entries when a record changes; while the watch is down the cache is
not trusted: entries are checked against the record's revision in etcd, and used as they are
only when etcd itself cannot answer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from dataclasses import dataclass
from typing import NoReturn, Protocol

from milvus_auth.core import MalformedRecord, cache_digest, digests_equal
from milvus_auth.proxy.bcrypt_pool import BcryptPool
from milvus_auth.proxy.headers import AUTH_CHECK_FAILURE, AuthFailure, Credentials
from milvus_auth.proxy.logsafe import shown_username, valid_username
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.proxy.ratelimit import FailureLimiter
from milvus_auth.store import EtcdUnavailable, StoredCredential

log = logging.getLogger(__name__)

MAX_PASSWORD_BYTES = 72  # bcrypt cannot check longer passwords; Milvus never stores them
ETCD_RETRY_AFTER = 1.0  # seconds to answer from the cache alone after etcd failed
RELEASE_BATCH = 8  # callers of one finished check resumed per event-loop turn


class AuthUnavailable(Exception):
    """etcd cannot be read and the cache cannot vouch for the user: gRPC UNAVAILABLE."""


class CredentialSource(Protocol):
    """What the authenticator reads records from (the `CredentialStore`)."""

    async def get(self, username: str) -> StoredCredential | None:
        """The user's record and revision, or None; raises `EtcdUnavailable`."""


class _Verdict(enum.Enum):
    VERIFIED = "verified"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105  (a reason word, not a password)
    UNKNOWN_USER = "unknown_user"
    MALFORMED_RECORD = "malformed_record"


@dataclass(frozen=True)
class _Entry:
    digest: str
    revision: int | None
    """The record revision the digest belongs to; None when pre-warmed without one."""


class _Flight:
    """One user's verifications in progress, and the newest change seen meanwhile."""

    def __init__(self) -> None:
        self.count = 0
        self.changed_at: float = 0.0


class Authenticator:
    """Decides whether a username and password are right; owns the credential cache."""

    def __init__(
        self,
        store: CredentialSource,
        *,
        limiter: FailureLimiter,
        pool: BcryptPool,
        metrics: ProxyMetrics,
    ) -> None:
        self._store = store
        self._limiter = limiter
        self._pool = pool
        self._metrics = metrics
        self._cache: dict[str, _Entry] = {}
        self._flights: dict[tuple[str, str], asyncio.Future[_Verdict]] = {}
        self._waiters: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, _Flight] = {}
        self._trusted = True
        self._etcd_down_until = 0.0

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
        entry = self._cache.get(username)
        if entry is not None and self._trusted and digests_equal(entry.digest, digest):
            self._metrics.cache_hit.inc()
            self._metrics.auth_cached.inc()
            return
        if not self._limiter.allows(username, peer):
            self._fail(credentials, peer=peer, method=method, reason="rate_limited")
        if entry is not None and self._trusted:
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
        try:
            verdict, led = await self._single_flight(username, digest, credentials.password, peer)
        except AuthUnavailable:
            self._metrics.auth_results.labels("unavailable", "etcd_unavailable").inc()
            log.warning(
                "auth unavailable user=%s peer=%s method=%s reason=etcd_unavailable",
                shown_username(username),
                peer,
                method,
            )
            raise
        if verdict is not _Verdict.VERIFIED:
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

    def header_refused(self, failure: AuthFailure, *, peer: str, method: str) -> None:
        """Count and log a call refused before any username was known (bad or no header)."""
        self._metrics.auth_results.labels("failure", failure.reason).inc()
        log.warning(
            "auth failure user=None peer=%s method=%s reason=%s", peer, method, failure.reason
        )

    def prewarm(self, username: str, digest: str, revision: int | None = None) -> None:
        """Accept `digest` for the user from now on (Milvus's UpdateCredentialCache).

        `revision` is the etcd revision of the record the digest belongs to, when the caller
        knows it: the watch event of that write then leaves the entry in place.
        """
        self._changed(username, math.inf if revision is None else revision)
        self._cache[username] = _Entry(digest, revision)

    def invalidate(self, username: str) -> None:
        """Forget the user (Milvus's InvalidateCredentialCache, or a user deleted)."""
        self._changed(username, math.inf)
        self._cache.pop(username, None)

    def record_changed(self, username: str, revision: int) -> None:
        """The user's record was written at `revision` (seen by the etcd watch)."""
        self._changed(username, revision)
        entry = self._cache.get(username)
        if entry is not None and (entry.revision is None or entry.revision < revision):
            del self._cache[username]

    def record_deleted(self, username: str, revision: int) -> None:
        """The user's record was deleted at `revision`: the entry goes, whatever it was tagged."""
        self._changed(username, revision)
        self._cache.pop(username, None)

    def distrust(self) -> None:
        """The watch is down: re-check entries against etcd until `restore`."""
        self._trusted = False

    def restore(self, *, missed: bool) -> None:
        """The watch is back; if changes may have been missed, forget everything."""
        if missed:
            self._cache.clear()
            for flight in self._in_flight.values():
                flight.changed_at = math.inf
        self._trusted = True

    @property
    def trusted(self) -> bool:
        """Whether cache hits are accepted without asking etcd."""
        return self._trusted

    def cached(self, username: str) -> bool:
        """Whether the user has a cache entry (for tests and probes)."""
        return username in self._cache

    def _changed(self, username: str, revision: float) -> None:
        flight = self._in_flight.get(username)
        if flight is not None:
            flight.changed_at = max(flight.changed_at, revision)

    async def _single_flight(
        self, username: str, digest: str, password: str, peer: str
    ) -> tuple[_Verdict, bool]:
        """The verdict of the one check for this username and password; True if this call
        started it."""
        key = (username, digest)
        future = self._flights.get(key)
        led = future is None
        if future is None:
            # Counted as a failure when the check starts, not when it ends: otherwise a flood
            # starts hundreds of bcrypts before its first failure is counted. A success (or an
            # etcd outage) gives the token back when the check lands.
            self._limiter.record_failure(username, peer)
            future = asyncio.ensure_future(self._verify(username, digest, password))
            self._flights[key] = future
            future.add_done_callback(lambda done: self._landed(key, peer, done))
        position = self._waiters.get(key, 0)
        self._waiters[key] = position + 1
        # Shielded: one caller giving up must not cancel the check the others wait for.
        verdict = await asyncio.shield(future)
        # Waiters resume in batches, one event-loop turn apart: released all at once, hundreds
        # of calls would forward upstream in one turn while every cached user's call waits.
        for _ in range(position // RELEASE_BATCH):
            await asyncio.sleep(0)
        return verdict, led

    def _landed(self, key: tuple[str, str], peer: str, future: asyncio.Future[_Verdict]) -> None:
        if self._flights.get(key) is future:
            del self._flights[key]
            self._waiters.pop(key, None)
        if future.cancelled():
            return
        error = future.exception()  # retrieved, so a flight every caller abandoned logs nothing
        if isinstance(error, AuthUnavailable) or (
            error is None and future.result() is _Verdict.VERIFIED
        ):
            self._limiter.refund(key[0], peer)

    async def _verify(self, username: str, digest: str, password: str) -> _Verdict:
        flight = self._in_flight.setdefault(username, _Flight())
        flight.count += 1
        try:
            return await self._verify_in_flight(username, digest, password, flight)
        finally:
            flight.count -= 1
            if flight.count == 0:
                del self._in_flight[username]

    async def _verify_in_flight(
        self, username: str, digest: str, password: str, flight: _Flight
    ) -> _Verdict:
        entry = self._cache.get(username)
        try:
            stored = await self._fetch(username)
        except AuthUnavailable:
            if entry is not None and digests_equal(entry.digest, digest):
                return _Verdict.VERIFIED  # etcd is down: the cache is the best knowledge left
            raise
        except MalformedRecord:
            await self._pool.verify_nobody(password)
            return _Verdict.MALFORMED_RECORD
        if stored is None:
            await self._pool.verify_nobody(password)
            return _Verdict.UNKNOWN_USER
        if (
            entry is not None
            and entry.revision == stored.mod_revision
            and digests_equal(entry.digest, digest)
        ):
            right = True  # etcd confirmed the cached entry is still current
        else:
            right = await self._pool.verify(password, stored.record.encrypted_password)
        # Cache only if nothing changed the user since the record was read.
        if right and flight.changed_at <= stored.mod_revision:
            self._cache[username] = _Entry(digest, stored.mod_revision)
        return _Verdict.VERIFIED if right else _Verdict.WRONG_PASSWORD

    async def _fetch(self, username: str) -> StoredCredential | None:
        # After a failure, etcd is not asked again for a moment: each call would wait for the
        # etcd timeout, and cached users must keep their usual latency while etcd is away.
        if time.monotonic() < self._etcd_down_until:
            raise AuthUnavailable(f"etcd is unavailable to check {username!r}")
        try:
            return await self._store.get(username)
        except EtcdUnavailable as error:
            self._etcd_down_until = time.monotonic() + ETCD_RETRY_AFTER
            raise AuthUnavailable(f"etcd is unavailable to check {username!r}") from error

    def _refuse(self, credentials: Credentials, *, peer: str, method: str, reason: str) -> NoReturn:
        self._limiter.record_failure(credentials.username, peer)
        self._fail(credentials, peer=peer, method=method, reason=reason)

    def _fail(self, credentials: Credentials, *, peer: str, method: str, reason: str) -> NoReturn:
        self._metrics.auth_results.labels("failure", reason).inc()
        log.warning(
            "auth failure user=%s peer=%s method=%s reason=%s",
            shown_username(credentials.username),
            peer,
            method,
            reason,
        )
        raise AuthFailure(AUTH_CHECK_FAILURE, reason)
