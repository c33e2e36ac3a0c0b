"""One fetch per key at a time: concurrent callers of the same key share the first one's result.

The API-key path reads etcd on a cache miss; a thousand calls with one cold key must cost one
read, not a thousand. A caller giving up (cancelled) does not cancel the fetch the others wait
for, and a fetch that failed is not remembered: the next caller starts a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Fetches in progress by key."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The result of the fetch in progress for `key`, or of `fetch()` started now."""
        future = self._flights.get(key)
        if future is None:
            future = asyncio.ensure_future(fetch())
            self._flights[key] = future
            future.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(future)

    def _landed(self, key: K, future: asyncio.Future[V]) -> None:
        if self._flights.get(key) is future:
            del self._flights[key]
        if not future.cancelled():
            future.exception()  # retrieved: a fetch every caller abandoned logs nothing
