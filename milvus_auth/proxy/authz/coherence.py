"""The etcd watch over Milvus's RBAC keys, keeping the policy cache coherent without any RPC.

Started from the revision of the snapshot loaded at start, so nothing between the load and the
watch is missed. Any put or delete of a role, binding, grant or group reloads the policy; while
the watch is down the cache is distrusted (checks read etcd themselves or fail closed), and
once it is back a reload picks up whatever happened meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from milvus_auth.proxy.authz.cache import PolicyCache
from milvus_auth.store import KeyChanged, RangeEvent, WatchLost, WatchRestored

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a new watch after an unexpected failure

Events = Callable[[int], AsyncIterator[RangeEvent]]
"""A watch of the RBAC keys from the given revision on (`store.watch_policy`)."""


class PolicyCoherence:
    """The background task applying RBAC watch events to the policy cache."""

    def __init__(self, cache: PolicyCache, events: Events) -> None:
        self._cache = cache
        self._events = events
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the policy and start watching (before the public port accepts calls)."""
        await self._cache.refresh()
        self._task = asyncio.create_task(self._run(), name="policy-watch")
        self._cache.trust()

    async def stop(self) -> None:
        """Stop watching and wait for the task to end."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        cache = self._cache
        while True:
            snapshot = cache.snapshot
            start = 1 if snapshot is None else snapshot.revision + 1
            try:
                async for event in self._events(start):
                    if isinstance(event, KeyChanged):
                        cache.changed()
                    elif isinstance(event, WatchLost):
                        log.warning("policy watch lost: checks read etcd until it is back")
                        cache.distrust()
                    elif isinstance(event, WatchRestored):
                        log.info("policy watch restored (missed changes: %s)", event.missed)
                        cache.changed()
                        cache.trust()
            except Exception:
                log.exception("policy watch failed; checks read etcd until it restarts")
            cache.distrust()
            await asyncio.sleep(RESTART_DELAY)
            try:
                await cache.refresh()
            except Exception:
                log.warning("policy reload before a new watch failed")
            else:
                cache.trust()  # the next watch starts right after the snapshot just loaded
