"""When each API key was last used, at minute resolution, written to etcd in batches.

An accepted key is only noted in memory (`note`: a dict lookup); a background task writes the
noted minutes about a second later, in one batch. A minute is written only when the record's
stored last use is older, and the write is compare-and-swap on the record's revision: when
several proxies saw the key in the same minute, the first write wins, the others find the
record changed, read it once more, see the minute already stored and stop. So each key costs
at most one etcd write per minute across the fleet, and the watch brings every proxy's cache
the new stamp. A revoked key is never written back (the compare fails, the re-read finds
nothing). Pending stamps are flushed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import EtcdUnavailable, RevisionConflict, StoredApiKey

log = logging.getLogger(__name__)

MINUTE = 60
FLUSH_DELAY = 1.0  # seconds between the first noted use and the batch write
CONCURRENT_WRITES = 32
SHUTDOWN_FLUSH_TIMEOUT = 2.0


class UsageStore(Protocol):
    """Where stamps are written (the `ApiKeyStore`)."""

    async def get(self, key_id: str) -> StoredApiKey | None:
        """The record and its revision, or None; raises `EtcdUnavailable`."""

    async def touch(self, stored: StoredApiKey, when: int) -> int:
        """Stamp a use at `when` if the record is unchanged; raises `RevisionConflict`."""


def minute_of(now: float) -> int:
    """The start of the minute `now` (Unix seconds) falls in."""
    return int(now) // MINUTE * MINUTE


class UsageRecorder:
    """Notes uses in memory and writes each key's newest minute in batches."""

    def __init__(
        self,
        store: UsageStore,
        cache: ApiKeyCache,
        metrics: ProxyMetrics,
        *,
        delay: float = FLUSH_DELAY,
    ) -> None:
        self._store = store
        self._cache = cache
        self._metrics = metrics
        self._delay = delay
        self._noted: dict[str, int] = {}  # key id -> newest minute queued or written
        self._pending: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def note(self, stored: StoredApiKey, now: float) -> None:
        """The key was accepted at `now`: queue its minute unless it is stored or queued."""
        minute = minute_of(now)
        if (stored.record.last_used_at or 0) >= minute:
            return
        key_id = stored.record.key_id
        if self._noted.get(key_id, 0) >= minute:
            return
        self._noted[key_id] = minute
        self._pending[key_id] = minute
        self._wake.set()

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="api-key-usage")

    async def stop(self) -> None:
        """Stop the writer and write what is still pending (bounded in time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.wait_for(self.flush(), SHUTDOWN_FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("API key last-use stamps not written at shutdown: %d", len(self._pending))

    async def flush(self) -> None:
        """Write every pending stamp now."""
        batch, self._pending = self._pending, {}
        items = list(batch.items())
        for start in range(0, len(items), CONCURRENT_WRITES):
            chunk = items[start : start + CONCURRENT_WRITES]
            await asyncio.gather(*(self._write(key_id, minute) for key_id, minute in chunk))
        if items:
            current = max(minute for _, minute in items)
            self._noted = {k: m for k, m in self._noted.items() if m >= current}

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._delay)
            self._wake.clear()
            await self.flush()

    async def _write(self, key_id: str, minute: int) -> None:
        stored = self._cache.get(key_id)
        try:
            for _ in range(2):  # the cached record, then once more from etcd after a conflict
                if stored is None:
                    stored = await self._store.get(key_id)
                    if stored is None:
                        self._counted("revoked")
                        return
                if (stored.record.last_used_at or 0) >= minute:
                    self._counted("current")
                    return
                try:
                    await self._store.touch(stored, minute)
                except RevisionConflict:
                    stored = None
                    continue
                self._counted("written")
                return
            self._counted("conflict")
        except EtcdUnavailable as error:
            self._counted("failed")
            log.warning("API key last use not written key=%s: %s", key_id, error)
            if self._pending.get(key_id, 0) < minute:
                self._pending[key_id] = minute
                self._wake.set()

    def _counted(self, result: str) -> None:
        self._metrics.api_key_last_used_writes.labels(result).inc()
