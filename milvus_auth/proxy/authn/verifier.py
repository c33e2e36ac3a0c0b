"""The single-flight verifier: one etcd read and one bcrypt per (username, password) at a time.

Concurrent misses for the same username and password share one verification; callers of a
finished check resume in small batches, one event-loop turn apart, so hundreds of released
calls do not starve cached users. After etcd fails it is not asked again for a moment: each
call would wait for the etcd timeout.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from typing import Protocol

from milvus_auth.core import MalformedRecord, digests_equal
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.cache import CredentialCache, Flight
from milvus_auth.store import EtcdUnavailable, StoredCredential

ETCD_RETRY_AFTER = 1.0  # seconds to answer from the cache alone after etcd failed
RELEASE_BATCH = 8  # callers of one finished check resumed per event-loop turn


class AuthUnavailable(Exception):
    """etcd cannot be read and the cache cannot vouch for the user: gRPC UNAVAILABLE."""


class CredentialSource(Protocol):
    """What the verifier reads records from (the `CredentialStore`)."""

    async def get(self, username: str) -> StoredCredential | None:
        """The user's record and revision, or None; raises `EtcdUnavailable`."""


class Verdict(enum.Enum):
    """The outcome of one verification."""

    VERIFIED = "verified"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105  (a reason word, not a password)
    UNKNOWN_USER = "unknown_user"
    MALFORMED_RECORD = "malformed_record"


Settle = Callable[[], None]
"""Called once when a check lands verified or unavailable (the rate limiter's refund)."""


class SingleFlightVerifier:
    """Verifies a password against etcd and bcrypt, sharing each check among its callers."""

    def __init__(
        self, store: CredentialSource, *, cache: CredentialCache, pool: BcryptPool
    ) -> None:
        self._store = store
        self._cache = cache
        self._pool = pool
        self._flights: dict[tuple[str, str], asyncio.Future[Verdict]] = {}
        self._waiters: dict[tuple[str, str], int] = {}
        self._etcd_down_until = 0.0

    def leads(self, username: str, digest: str) -> bool:
        """Whether a check for this username and digest would start now (none in progress)."""
        return (username, digest) not in self._flights

    async def verify(self, username: str, digest: str, password: str, settle: Settle) -> Verdict:
        """The verdict of the one check for this username and password; `settle` is called
        when a check this call started lands verified (or etcd was unavailable)."""
        key = (username, digest)
        future = self._flights.get(key)
        if future is None:
            future = asyncio.ensure_future(self._verify(username, digest, password))
            self._flights[key] = future
            future.add_done_callback(lambda done: self._landed(key, settle, done))
        position = self._waiters.get(key, 0)
        self._waiters[key] = position + 1
        # Shielded: one caller giving up must not cancel the check the others wait for.
        verdict = await asyncio.shield(future)
        # Waiters resume in batches, one event-loop turn apart: released all at once, hundreds
        # of calls would forward upstream in one turn while every cached user's call waits.
        for _ in range(position // RELEASE_BATCH):
            await asyncio.sleep(0)
        return verdict

    def _landed(
        self, key: tuple[str, str], settle: Settle, future: asyncio.Future[Verdict]
    ) -> None:
        if self._flights.get(key) is future:
            del self._flights[key]
            self._waiters.pop(key, None)
        if future.cancelled():
            return
        error = future.exception()  # retrieved, so a flight every caller abandoned logs nothing
        if isinstance(error, AuthUnavailable) or (
            error is None and future.result() is Verdict.VERIFIED
        ):
            settle()

    async def _verify(self, username: str, digest: str, password: str) -> Verdict:
        flight = self._cache.begin(username)
        try:
            return await self._verify_in_flight(username, digest, password, flight)
        finally:
            self._cache.end(username, flight)

    async def _verify_in_flight(
        self, username: str, digest: str, password: str, flight: Flight
    ) -> Verdict:
        entry = self._cache.entry(username)
        try:
            stored = await self._fetch(username)
        except AuthUnavailable:
            if entry is not None and digests_equal(entry.digest, digest):
                return Verdict.VERIFIED  # etcd is down: the cache is the best knowledge left
            raise
        except MalformedRecord:
            await self._pool.verify_nobody(password)
            return Verdict.MALFORMED_RECORD
        if stored is None:
            await self._pool.verify_nobody(password)
            return Verdict.UNKNOWN_USER
        if (
            entry is not None
            and entry.revision == stored.mod_revision
            and digests_equal(entry.digest, digest)
        ):
            right = True  # etcd confirmed the cached entry is still current
        else:
            right = await self._pool.verify(password, stored.record.encrypted_password)
        if right:
            self._cache.store_verified(username, digest, stored.mod_revision, flight)
        return Verdict.VERIFIED if right else Verdict.WRONG_PASSWORD

    async def _fetch(self, username: str) -> StoredCredential | None:
        # Cached users must keep their usual latency while etcd is away.
        if time.monotonic() < self._etcd_down_until:
            raise AuthUnavailable(f"etcd is unavailable to check {username!r}")
        try:
            return await self._store.get(username)
        except EtcdUnavailable as error:
            self._etcd_down_until = time.monotonic() + ETCD_RETRY_AFTER
            raise AuthUnavailable(f"etcd is unavailable to check {username!r}") from error
