"""The API key cache: key id -> the record etcd holds, kept coherent by the etcd watch.

Entries are the stored records themselves (the hash, the user, the times), not the outcome of
any one caller's check, so a wrong secret never changes what is cached. The watch of the key
prefix (`watch_api_keys`) carries each new value: a rewrite by another proxy (its last-use
stamp) replaces the entry in place, a revocation drops it, and a key nobody here used is not
loaded at all. Fetches in progress learn of changes made meanwhile (`Flight`, as for
passwords), so a read that raced a revocation is never cached. While the watch is down the
cache is not trusted; after a gap etcd compacted away, everything is forgotten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from milvus_auth.core.apikeys import ApiKeyRecord
from milvus_auth.proxy.authn.cache import Flight, Flights
from milvus_auth.store import KeyChanged, RangeEvent, StoredApiKey, WatchLost, WatchRestored

log = logging.getLogger(__name__)


class ApiKeyCache:
    """Stored records by key id, the trust flag, and the changes fetches must not miss."""

    def __init__(self, id_of: Callable[[str], str]) -> None:
        self._id_of = id_of
        self._entries: dict[str, StoredApiKey] = {}
        self._flights = Flights()
        self._trusted = True

    def get(self, key_id: str) -> StoredApiKey | None:
        """The cached record, whether or not the cache is trusted."""
        return self._entries.get(key_id)

    @property
    def trusted(self) -> bool:
        """Whether entries are accepted without asking etcd."""
        return self._trusted

    def begin(self, key_id: str) -> Flight:
        """A fetch of the key starts: changes from now on are remembered."""
        return self._flights.begin(key_id)

    def end(self, key_id: str, flight: Flight) -> None:
        """A fetch of the key ended."""
        self._flights.end(key_id, flight)

    def store_fetched(self, stored: StoredApiKey, flight: Flight) -> None:
        """Cache a record read from etcd, unless the key changed since it was read."""
        if flight.changed_at <= stored.mod_revision:
            self._entries[stored.record.key_id] = stored

    def invalidate(self, key_id: str) -> None:
        """Forget the key (the InvalidateApiKeyCache RPC): its next use reads etcd."""
        self._flights.changed(key_id, math.inf)
        self._entries.pop(key_id, None)

    def apply(self, event: RangeEvent) -> None:
        """What one event of the key prefix's watch does to the cache."""
        if isinstance(event, KeyChanged):
            self._key_changed(event)
        elif isinstance(event, WatchLost):
            log.warning("API key watch lost: keys are re-read from etcd")
            self._trusted = False
        elif isinstance(event, WatchRestored):
            log.info("API key watch restored (missed changes: %s)", event.missed)
            if event.missed:
                self._entries.clear()
                self._flights.all_changed()
            self._trusted = True

    def distrust(self) -> None:
        """The watch failed for good: every use reads etcd from now on."""
        self._trusted = False

    def __len__(self) -> int:
        return len(self._entries)

    def _key_changed(self, event: KeyChanged) -> None:
        key_id = self._id_of(event.key)
        self._flights.changed(key_id, event.revision)
        entry = self._entries.get(key_id)
        if entry is None or entry.mod_revision >= event.revision:
            return  # not used here (loaded on first use), or an event replayed after a restart
        if event.deleted:
            del self._entries[key_id]
            return
        try:
            record = ApiKeyRecord.decode(key_id, event.value)
        except ValueError:
            del self._entries[key_id]  # unreadable now: the next use reads and refuses it
            return
        self._entries[key_id] = StoredApiKey(record, event.revision)
