"""Token buckets that limit failed logins per username and client address, per username, and
per client address.

Every refused password costs a bcrypt (70-300 ms of CPU). Every failure spends a token in three
buckets; when any of them is empty the attempt fails fast, without bcrypt, until it refills.
Successful logins spend nothing, and a cached good password is never limited.

The trade-off: the tight bucket is keyed on the username *and* the client address, so ten wrong
passwords for alice from one address stop that address only, and alice still logs in from any
other. Limiting by username alone would let anyone lock alice out at will. The price is that
guesses spread over many addresses get more tries per user, so a per-username ceiling over all
addresses remains; it sits well above what one address can spend (its pair bucket), so only
many addresses together can reach it. The per-address bucket bounds what one address spends
over all usernames.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateLimitSettings:
    """How many failed logins are tolerated; a burst of 0 turns that limit off."""

    user_burst: int = 10
    """Failures a username may have in a row from one client address before that address is
    limited for that username."""
    user_per_second: float = 1.0
    """Failures per second a username may sustain from one client address once limited."""
    user_total_burst: int = 100
    """Failures a username may have in a row from all addresses together before it is limited
    for everyone; above `user_burst`, so one address alone cannot lock a user out."""
    user_total_per_second: float = 10.0
    """Failures per second a username may sustain from all addresses together."""
    peer_burst: int = 30
    """Failures a client address may have in a row before it is limited."""
    peer_per_second: float = 3.0
    """Failures per second a client address may sustain once limited."""
    max_tracked: int = 100_000
    """Keys kept per limiter; the least recently failed are forgotten first (memory bound)."""


class TokenBuckets:
    """One token bucket per key, created full on the key's first failure."""

    def __init__(
        self, *, burst: int, per_second: float, max_keys: int, clock: Clock = time.monotonic
    ) -> None:
        self._burst = float(burst)
        self._per_second = per_second
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False when the burst is 0: nothing is ever limited."""
        return self._burst > 0

    def _tokens(self, key: Hashable, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return self._burst
        tokens, since = found
        return min(self._burst, tokens + (now - since) * self._per_second)

    def allows(self, key: Hashable) -> bool:
        """Whether the key has a token left for one more attempt."""
        return not self.enabled or self._tokens(key, self._clock()) >= 1.0

    def spend(self, key: Hashable) -> None:
        """Take one token for a failure (the bucket may go to zero, never below)."""
        if not self.enabled:
            return
        now = self._clock()
        self._buckets[key] = (max(0.0, self._tokens(key, now) - 1.0), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def refund(self, key: Hashable) -> None:
        """Give back a token spent for an attempt that turned out not to be a failure."""
        found = self._buckets.get(key)
        if found is not None:
            tokens, since = found
            self._buckets[key] = (min(self._burst, tokens + 1.0), since)


class FailureLimiter:
    """Failed-login limits per (username, address), per username and per address together."""

    def __init__(self, settings: RateLimitSettings, clock: Clock = time.monotonic) -> None:
        self._pairs = TokenBuckets(
            burst=settings.user_burst,
            per_second=settings.user_per_second,
            max_keys=settings.max_tracked,
            clock=clock,
        )
        self._users = TokenBuckets(
            burst=settings.user_total_burst,
            per_second=settings.user_total_per_second,
            max_keys=settings.max_tracked,
            clock=clock,
        )
        self._peers = TokenBuckets(
            burst=settings.peer_burst,
            per_second=settings.peer_per_second,
            max_keys=settings.max_tracked,
            clock=clock,
        )

    def allows(self, username: str, peer: str) -> bool:
        """Whether an attempt that may need bcrypt can go ahead."""
        address = peer_address(peer)
        return (
            self._pairs.allows((username, address))
            and self._users.allows(username)
            and self._peers.allows(address)
        )

    def record_failure(self, username: str, peer: str) -> None:
        """Count one failed attempt against the pair, the username and the client address."""
        address = peer_address(peer)
        self._pairs.spend((username, address))
        self._users.spend(username)
        self._peers.spend(address)

    def refund(self, username: str, peer: str) -> None:
        """Undo `record_failure` for an attempt that succeeded after all."""
        address = peer_address(peer)
        self._pairs.refund((username, address))
        self._users.refund(username)
        self._peers.refund(address)


def peer_address(peer: str) -> str:
    """The client's address without its port: `ipv4:10.0.0.1:5123` -> `10.0.0.1`.

    Limiting by address, not by connection, so a client cannot reset its budget by reconnecting.
    """
    kind, _, rest = peer.partition(":")
    if kind in {"ipv4", "ipv6"} and rest:
        host, _, _ = rest.rpartition(":")
        return host.strip("[]") or rest
    return peer
