"""Watches of etcd key ranges that survive etcd restarts and say when they were blind.

`watch_ranges` is the one restart loop: it follows any number of key ranges from one start
revision, resumes each just past the last revision it saw after a break, and reports
`WatchLost` (stop trusting what you cached) and `WatchRestored` (`missed` tells whether events
in between may be gone, because etcd compacted past them). `watch_users` (the credential cache)
and `watch_policy` (the RBAC cache) are views of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aetcd
import grpc
from aetcd import rtypes

from milvus_auth.store.apikeys import ApiKeyStore
from milvus_auth.store.client import EtcdConnection
from milvus_auth.store.credentials import CredentialStore
from milvus_auth.store.errors import EtcdUnavailable
from milvus_auth.store.policy import PolicyStore

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
class KeyChanged:
    """A key in a watched range was put (`value`) or deleted (`deleted`) at `revision`."""

    key: str
    revision: int
    value: bytes = b""
    deleted: bool = False


@dataclass(frozen=True)
class WatchLost:
    """The watch broke; changes may happen unseen until `WatchRestored`."""


@dataclass(frozen=True)
class WatchRestored:
    """The watch is back; `missed` means events in between could not be replayed."""

    missed: bool


WatchEvent = UserChanged | UserDeleted | WatchLost | WatchRestored
RangeEvent = KeyChanged | WatchLost | WatchRestored


@dataclass(frozen=True)
class KeyRange:
    """Keys from `start` (inclusive) to `end` (exclusive)."""

    start: bytes
    end: bytes

    @classmethod
    def prefix(cls, prefix: str) -> KeyRange:
        """Every key under `prefix`."""
        start = prefix.encode()
        return cls(start, aetcd.utils.prefix_range_end(start))


class _RangeBroke(Exception):
    """A watch of one of the ranges failed with `cause`."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.index = index
        self.cause = cause


async def watch_ranges(
    connection: EtcdConnection,
    ranges: Sequence[KeyRange],
    *,
    start_revision: int | None = None,
    retry_delay: float = 0.2,
    max_retry_delay: float = 5.0,
) -> AsyncGenerator[RangeEvent, None]:
    """Yield changes in `ranges` forever, re-establishing the watches after any failure.

    Without `start_revision` the watches start after etcd's current revision; a cache that
    loaded a snapshot at revision R passes R + 1 and misses nothing. Events of one range come in
    revision order; events of different ranges may interleave.
    """
    next_revisions: list[int | None] = [start_revision] * len(ranges)
    lost = False
    delay = retry_delay
    while True:
        try:
            if None in next_revisions:
                current = await _current_revision(connection, ranges[0]) + 1
                next_revisions = [current if r is None else r for r in next_revisions]
            watches = [
                await connection.call(_open_watch(r, revision or 0))
                for r, revision in zip(ranges, next_revisions, strict=True)
            ]
            if lost:
                lost = False
                yield WatchRestored(missed=False)
            delay = retry_delay
            async for index, event in _merged(watches):
                revision = int(event.kv.mod_revision)
                next_revisions[index] = revision + 1
                deleted = event.kind == rtypes.EventKind.DELETE
                value = b"" if deleted else bytes(event.kv.value)
                yield KeyChanged(event.kv.key.decode(), revision, value, deleted)
        except _RangeBroke as broke:
            if isinstance(broke.cause, aetcd.RevisionCompactedError):
                log.warning("etcd compacted past revision %s; resyncing", next_revisions)
                next_revisions[broke.index] = int(broke.cause.compacted_revision)
                if not lost:
                    yield WatchLost()
                lost = False
                yield WatchRestored(missed=True)
                continue
            log.warning("etcd watch lost: %s", type(broke.cause).__name__)
            await connection.fail_over()
        except (EtcdUnavailable, aetcd.ClientError, grpc.RpcError, OSError) as error:
            log.warning("etcd watch lost: %s", type(error).__name__)
            await connection.fail_over()
        if not lost:
            lost = True
            yield WatchLost()
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_retry_delay)


async def _merged(watches: Sequence[rtypes.Watch]) -> AsyncIterator[tuple[int, rtypes.Event]]:
    """Events of several watches as they come; the first failure ends it as `_RangeBroke`."""
    queue: asyncio.Queue[tuple[int, rtypes.Event | BaseException]] = asyncio.Queue()

    async def pump(index: int, watch: rtypes.Watch) -> None:
        try:
            async for event in watch:
                await queue.put((index, event))
            await queue.put((index, EtcdUnavailable("etcd ended the watch")))
        except Exception as error:  # every failure ends the merged watch; none is lost
            await queue.put((index, error))

    tasks = [asyncio.ensure_future(pump(i, watch)) for i, watch in enumerate(watches)]
    try:
        while True:
            index, item = await queue.get()
            if isinstance(item, BaseException):
                raise _RangeBroke(index, item)
            yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in watches:
            await _cancel_quietly(watch)


async def watch_users(
    store: CredentialStore, *, retry_delay: float = 0.2, max_retry_delay: float = 5.0
) -> AsyncIterator[WatchEvent]:
    """The credential prefix as user events (the proxy's credential cache follows it)."""
    prefix = store.layout.users_prefix
    events = watch_ranges(
        store.connection,
        [KeyRange.prefix(prefix)],
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
    )
    try:
        async for event in events:
            if not isinstance(event, KeyChanged):
                yield event
                continue
            username = store.layout.username_of(event.key)
            kind = UserDeleted if event.deleted else UserChanged
            yield kind(username, event.revision)
    finally:
        await events.aclose()


def policy_ranges(store: PolicyStore) -> list[KeyRange]:
    """Milvus's RBAC keys: `credential/grantee-id/` up to (not including) `credential/users/`
    (grants, roles and bindings sort in between, user records do not) and the privilege groups."""
    layout = store.layout
    credential = layout.grantee_ids_prefix.encode()
    return [
        KeyRange(credential, layout.users_prefix.encode()),
        KeyRange.prefix(layout.groups_prefix),
    ]


def watch_policy(
    store: PolicyStore,
    *,
    start_revision: int | None = None,
    retry_delay: float = 0.2,
    max_retry_delay: float = 5.0,
) -> AsyncGenerator[RangeEvent, None]:
    """Every change to roles, bindings, grants and custom groups, from `start_revision`
    (a snapshot's revision + 1) on; never a user record."""
    return watch_ranges(
        store.connection,
        policy_ranges(store),
        start_revision=start_revision,
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
    )


def watch_api_keys(
    store: ApiKeyStore,
    *,
    start_revision: int | None = None,
    retry_delay: float = 0.2,
    max_retry_delay: float = 5.0,
) -> AsyncGenerator[RangeEvent, None]:
    """Every API key record created, rewritten or revoked, from `start_revision` on."""
    return watch_ranges(
        store.connection,
        [KeyRange.prefix(store.prefix)],
        start_revision=start_revision,
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
    )


async def _current_revision(connection: EtcdConnection, key_range: KeyRange) -> int:
    found = await connection.call(lambda c: c.get_prefix(key_range.start, keys_only=True))
    return int(found.header.revision)


def _open_watch(
    key_range: KeyRange, start_revision: int
) -> Callable[[aetcd.Client], Awaitable[rtypes.Watch]]:
    async def open_watch(client: aetcd.Client) -> rtypes.Watch:
        return await client.watch(
            key_range.start, range_end=key_range.end, start_revision=start_revision
        )

    return open_watch


async def _cancel_quietly(watch: rtypes.Watch) -> None:
    try:
        await asyncio.wait_for(watch.cancel(), 1.0)
    except (TimeoutError, aetcd.ClientError, grpc.RpcError, OSError):
        log.debug("cancelling a broken watch failed")
