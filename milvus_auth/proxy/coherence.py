"""Cache coherence beyond Milvus: the etcd watch drops a user's cache entry when it changes.

Stock Milvus trusts its cache until a RootCoord RPC says otherwise, so a proxy that missed one
accepts an old password forever. Here every put or delete under the credential prefix, by
anyone (another proxy, `milvus-auth users`, the operator, Milvus itself), drops that user's
entry at once. While the watch is down the authenticator re-checks entries against etcd; after
a gap that etcd compacted away, everything is forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from milvus_auth.proxy.authenticator import Authenticator
from milvus_auth.store import (
    UserChanged,
    UserDeleted,
    WatchEvent,
    WatchLost,
    WatchRestored,
)

log = logging.getLogger(__name__)


async def keep_coherent(events: AsyncIterator[WatchEvent], authenticator: Authenticator) -> None:
    """Apply watch events to the cache until cancelled."""
    async for event in events:
        apply(event, authenticator)


def apply(event: WatchEvent, authenticator: Authenticator) -> None:
    """What one watch event does to the cache."""
    if isinstance(event, UserChanged | UserDeleted):
        authenticator.record_changed(event.username, event.revision)
    elif isinstance(event, WatchLost):
        log.warning("credential watch lost: cache entries are re-checked against etcd")
        authenticator.distrust()
    elif isinstance(event, WatchRestored):
        log.info("credential watch restored (missed changes: %s)", event.missed)
        authenticator.restore(missed=event.missed)
