"""The credential cache: username -> sha256 digest, kept coherent by the etcd watch.

Milvus's proxy caches sha256(password + username) per user so a login costs one hash. Here the
entries also carry the etcd revision of the record they were verified against, so a watch
event for an older write leaves them in place and any newer one drops them; verifications in
progress learn of changes made meanwhile (`Flight`), so they never cache a digest a concurrent
change invalidated. While the watch is down the cache is not trusted (`trusted` False) and
callers re-check entries against etcd.

The cache also remembers which users etcd was seen to hold (`known_user`): an API key acts as
its user only while that user exists, and a key's every use must not cost an etcd read. The
same watch events keep it coherent (a deleted user is forgotten at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CacheEntry:
    """A verified digest and the record revision it belongs to (None: pre-warmed without)."""

    digest: str
    revision: int | None


class Flight:
    """One name's reads in progress, and the newest change seen meanwhile."""

    def __init__(self) -> None:
        self.count = 0
        self.changed_at: float = 0.0


class Flights:
    """The reads in progress by name (a username, an API key id), so a change seen while one
    runs keeps its possibly older result out of the cache."""

    def __init__(self) -> None:
        self._by_name: dict[str, Flight] = {}

    def begin(self, name: str) -> Flight:
        """A read of `name` starts: changes from now on are remembered."""
        flight = self._by_name.setdefault(name, Flight())
        flight.count += 1
        return flight

    def end(self, name: str, flight: Flight) -> None:
        """A read of `name` ended."""
        flight.count -= 1
        if flight.count == 0:
            self._by_name.pop(name, None)

    def changed(self, name: str, revision: float) -> None:
        """`name` changed at `revision` (math.inf: at an unknown revision)."""
        flight = self._by_name.get(name)
        if flight is not None:
            flight.changed_at = max(flight.changed_at, revision)

    def all_changed(self) -> None:
        """Anything may have changed: no read in progress may cache its result."""
        for flight in self._by_name.values():
            flight.changed_at = math.inf


class CredentialCache:
    """Digests by username, the trust flag, and the changes verifications must not miss."""

    def __init__(self) -> None:
        self._entries: dict[str, CacheEntry] = {}
        self._known: dict[str, int] = {}  # username -> revision its record was read at
        self._flights = Flights()
        self._trusted = True

    def entry(self, username: str) -> CacheEntry | None:
        """The user's entry, whether or not the cache is trusted."""
        return self._entries.get(username)

    def begin(self, username: str) -> Flight:
        """A verification of the user starts: changes from now on are remembered."""
        return self._flights.begin(username)

    def end(self, username: str, flight: Flight) -> None:
        """A verification of the user ended."""
        self._flights.end(username, flight)

    def store_verified(self, username: str, digest: str, revision: int, flight: Flight) -> None:
        """Cache a digest verified against the record at `revision`, unless the user changed
        since that record was read."""
        if flight.changed_at <= revision:
            self._entries[username] = CacheEntry(digest, revision)

    def known_user(self, username: str) -> bool:
        """Whether etcd was seen to hold the user's record (and nothing since deleted it)."""
        return username in self._known

    def store_known(self, username: str, revision: int, flight: Flight) -> None:
        """etcd held the user's record at `revision`, unless the user changed since."""
        if flight.changed_at <= revision:
            self._known[username] = revision

    def prewarm(self, username: str, digest: str, revision: int | None = None) -> None:
        """Accept `digest` for the user from now on (Milvus's UpdateCredentialCache).

        `revision` is the etcd revision of the record the digest belongs to, when the caller
        knows it: the watch event of that write then leaves the entry in place.
        """
        self._changed(username, math.inf if revision is None else revision)
        self._entries[username] = CacheEntry(digest, revision)

    def invalidate(self, username: str) -> None:
        """Forget the user (Milvus's InvalidateCredentialCache, or a user deleted)."""
        self._changed(username, math.inf)
        self._entries.pop(username, None)
        self._known.pop(username, None)

    def record_changed(self, username: str, revision: int) -> None:
        """The user's record was written at `revision` (seen by the etcd watch)."""
        self._changed(username, revision)
        entry = self._entries.get(username)
        if entry is not None and (entry.revision is None or entry.revision < revision):
            del self._entries[username]

    def record_deleted(self, username: str, revision: int) -> None:
        """The user's record was deleted at `revision`: the entry goes, whatever it was tagged."""
        self._changed(username, revision)
        self._entries.pop(username, None)
        self._known.pop(username, None)

    def distrust(self) -> None:
        """The watch is down: re-check entries against etcd until `restore`."""
        self._trusted = False

    def restore(self, *, missed: bool) -> None:
        """The watch is back; if changes may have been missed, forget everything."""
        if missed:
            self._entries.clear()
            self._known.clear()
            self._flights.all_changed()
        self._trusted = True

    @property
    def trusted(self) -> bool:
        """Whether cache hits are accepted without asking etcd."""
        return self._trusted

    def cached(self, username: str) -> bool:
        """Whether the user has a cache entry (for tests and probes)."""
        return username in self._entries

    def _changed(self, username: str, revision: float) -> None:
        self._flights.changed(username, revision)
