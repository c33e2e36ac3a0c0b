"""Cache coherence beyond Milvus: the etcd watch drops a credential cache entry on change.

Stock Milvus trusts its cache until a RootCoord RPC says otherwise, so a proxy that missed one
accepts an old password forever. Here every put or delete under the credential prefix, by
anyone (another proxy, `milvus-auth users`, the operator, Milvus itself), drops that user's
entry at once. While the watch is down the authenticator re-checks entries against etcd; after
a gap that etcd compacted away, everything is forgotten. The API key cache follows its own
prefix the same way (`ApiKeyCache.apply`), run by the same `Coherence` task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

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
E = TypeVar("E")


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


class Coherence(Generic[E]):
    """The background task applying watch events to a cache (`distrust`: what the cache does
    when the watch fails unexpectedly)."""

    def __init__(
        self,
        events: Callable[[], AsyncIterator[E]],
        apply_event: Callable[[E], None],
        distrust: Callable[[], None],
        *,
        name: str = "credential",
    ) -> None:
        self._events = events
        self._apply = apply_event
        self._distrust = distrust
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_credentials(
        cls, events: Callable[[], AsyncIterator[WatchEvent]], cache: CredentialCache
    ) -> Coherence[WatchEvent]:
        """The credential watch applied to the authenticator's cache."""
        return Coherence(events, lambda event: apply(event, cache), cache.distrust)

    def start(self) -> None:
        """Start watching (call before the public port accepts calls)."""
        self._task = asyncio.create_task(self._run(), name=f"{self._name}-watch")

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
                    self._apply(event)
            except Exception:
                # The store's watch survives etcd failures itself; anything reaching here is
                # unexpected. A new watch cannot tell what it missed, and nothing will say
                # when it is back, so the cache stays untrusted (still correct, one etcd read
                # per login) for the rest of this process's life.
                log.exception(
                    "%s watch failed; cache entries are re-checked from now on", self._name
                )
            self._distrust()
            await asyncio.sleep(RESTART_DELAY)
