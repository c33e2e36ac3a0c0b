"""A watch of the credential prefix that survives etcd restarts and says when it was blind.

Consumers (the proxy's cache) get one stream of typed events: a user's record changed or was
deleted, the watch was lost (stop trusting what you cached), or it is back (`missed` tells
whether events in between may be gone, because etcd compacted past the last seen revision).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aetcd
import grpc
from aetcd import rtypes

from milvus_auth.store.credentials import CredentialStore
from milvus_auth.store.errors import EtcdUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserChanged:
    """A user's record was created or rewritten at `revision`."""

    username: str
    revision: int


@dataclass(frozen=True)
class UserDeleted:
    """A user's record was deleted at `revision`."""

    username: str
    revision: int


@dataclass(frozen=True)
class WatchLost:
    """The watch broke; changes may happen unseen until `WatchRestored`."""


@dataclass(frozen=True)
class WatchRestored:
    """The watch is back; `missed` means events in between could not be replayed."""

    missed: bool


WatchEvent = UserChanged | UserDeleted | WatchLost | WatchRestored


async def watch_users(
    store: CredentialStore, *, retry_delay: float = 0.2, max_retry_delay: float = 5.0
) -> AsyncIterator[WatchEvent]:
    """Yield credential events forever, re-establishing the watch after any failure.

    The first watch starts at the current revision; after a break it resumes just past the
    last revision seen, so nothing is lost unless etcd compacted it meanwhile.
    """
    prefix = store.layout.users_prefix
    next_revision: int | None = None
    lost = False
    delay = retry_delay
    while True:
        try:
            if next_revision is None:
                next_revision = await store.revision() + 1
            watch = await store.connection.call(_open_watch(prefix, next_revision))
            if lost:
                lost = False
                yield WatchRestored(missed=False)
            delay = retry_delay
            try:
                async for event in watch:
                    revision = int(event.kv.mod_revision)
                    next_revision = revision + 1
                    username = store.layout.username_of(event.kv.key.decode())
                    if event.kind == rtypes.EventKind.DELETE:
                        yield UserDeleted(username, revision)
                    else:
                        yield UserChanged(username, revision)
            finally:
                await _cancel_quietly(watch)
        except aetcd.RevisionCompactedError as error:
            log.warning("etcd compacted past revision %s; resyncing", next_revision)
            next_revision = int(error.compacted_revision)
            if not lost:
                yield WatchLost()
            lost = False
            yield WatchRestored(missed=True)
            continue
        except (EtcdUnavailable, aetcd.ClientError, grpc.RpcError, OSError) as error:
            log.warning("etcd watch on %s lost: %s", prefix, type(error).__name__)
            await store.connection.fail_over()
        if not lost:
            lost = True
            yield WatchLost()
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_retry_delay)


def _open_watch(
    prefix: str, start_revision: int
) -> Callable[[aetcd.Client], Awaitable[rtypes.Watch]]:
    async def open_watch(client: aetcd.Client) -> rtypes.Watch:
        return await client.watch_prefix(prefix.encode(), start_revision=start_revision)

    return open_watch


async def _cancel_quietly(watch: rtypes.Watch) -> None:
    try:
        await asyncio.wait_for(watch.cancel(), 1.0)
    except (TimeoutError, aetcd.ClientError, grpc.RpcError, OSError):
        log.debug("cancelling a broken watch failed")
