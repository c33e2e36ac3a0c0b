"""Cache coherence beyond Milvus: the etcd watch drops a credential cache entry on change.

Stock Milvus trusts its cache until a RootCoord RPC says otherwise, so a proxy that missed one
accepts an old password forever. Here every put or delete under the credential prefix, by
anyone (another proxy, `milvus-auth users`, the operator, Milvus itself), drops that user's
entry at once. While the watch is down the authenticator re-checks entries against etcd; after
a gap that etcd compacted away, everything is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from milvus_auth.proxy.authn.cache import CredentialCache
from milvus_auth.store import (
    UserChanged,
    UserDeleted,
    WatchEvent,
    WatchLost,
    WatchRestored,
)

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a new watch after an unexpected failure


def apply(event: WatchEvent, cache: CredentialCache) -> None:
    """What one watch event does to the cache."""
    if isinstance(event, UserDeleted):
        cache.record_deleted(event.username, event.revision)
    elif isinstance(event, UserChanged):
        cache.record_changed(event.username, event.revision)
    elif isinstance(event, WatchLost):
        log.warning("credential watch lost: cache entries are re-checked against etcd")
        cache.distrust()
    elif isinstance(event, WatchRestored):
        log.info("credential watch restored (missed changes: %s)", event.missed)
        cache.restore(missed=event.missed)


class Coherence:
    """The background task applying watch events to the authenticator's cache."""

    def __init__(
        self, events: Callable[[], AsyncIterator[WatchEvent]], cache: CredentialCache
    ) -> None:
        self._events = events
        self._cache = cache
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (call before the public port accepts calls)."""
        self._task = asyncio.create_task(self._run(), name="credential-watch")

    async def stop(self) -> None:
        """Stop watching and wait for the task to end."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                async for event in self._events():
                    apply(event, self._cache)
            except Exception:
                # The store's watch survives etcd failures itself; anything reaching here is
                # unexpected. A new watch cannot tell what it missed, and nothing will say
                # when it is back, so the cache stays untrusted (still correct, one etcd read
                # per login) for the rest of this process's life.
                log.exception("credential watch failed; cache entries are re-checked from now on")
            self._cache.distrust()
            await asyncio.sleep(RESTART_DELAY)
