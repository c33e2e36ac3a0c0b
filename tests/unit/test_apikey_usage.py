"""Last-use stamps: noted in memory, written in batches, one write per key per minute across
proxies (compare-and-swap on a shared in-memory store standing in for etcd)."""

from __future__ import annotations

import asyncio

import pytest

from milvus_auth.core.apikeys import ApiKeyRecord, generate_api_key
from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.authn.usage import UsageRecorder, minute_of
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import EtcdUnavailable, KeyChanged, RevisionConflict, StoredApiKey

PREFIX = "meta/milvus-auth/api-keys/"
NOW = 1_800_000_000.0 + 5


class SharedStore:
    """One etcd for several proxies: CAS on the mod revision, writes counted."""

    def __init__(self) -> None:
        self.records: dict[str, StoredApiKey] = {}
        self.revision = 1
        self.writes = 0
        self.down = False

    def issue(self) -> StoredApiKey:
        key = generate_api_key()
        self.revision += 1
        stored = StoredApiKey(
            ApiKeyRecord(key.key_id, "etl", key.secret_hash, int(NOW) - 600), self.revision
        )
        self.records[key.key_id] = stored
        return stored

    async def get(self, key_id: str) -> StoredApiKey | None:
        return self.records.get(key_id)

    async def touch(self, stored: StoredApiKey, when: int) -> int:
        if self.down:
            raise EtcdUnavailable("etcd at 127.0.0.1:1 is unavailable (test)")
        current = self.records.get(stored.record.key_id)
        if current is None or current.mod_revision != stored.mod_revision:
            raise RevisionConflict(stored.record.key_id, stored.mod_revision)
        self.revision += 1
        self.writes += 1
        self.records[stored.record.key_id] = StoredApiKey(
            stored.record.used_at(when), self.revision
        )
        return self.revision


def _proxy(store: SharedStore) -> tuple[UsageRecorder, ApiKeyCache, ProxyMetrics]:
    cache = ApiKeyCache(lambda key: key.removeprefix(PREFIX))
    metrics = ProxyMetrics()
    return UsageRecorder(store, cache, metrics, delay=0.01), cache, metrics


def _count(metrics: ProxyMetrics, result: str) -> int:
    return int(metrics.api_key_last_used_writes.labels(result)._value.get())


@pytest.fixture
def store() -> SharedStore:
    return SharedStore()


async def test_many_uses_in_a_minute_are_one_write(store: SharedStore) -> None:
    recorder, _, metrics = _proxy(store)
    stored = store.issue()
    for second in range(50):
        recorder.note(stored, NOW + second)
    await recorder.flush()
    assert store.writes == 1
    assert store.records[stored.record.key_id].record.last_used_at == minute_of(NOW)
    recorder.note(stored, NOW + 54)  # still the same minute: nothing queued
    await recorder.flush()
    assert store.writes == 1
    recorder.note(stored, NOW + 60)
    await recorder.flush()
    assert store.writes == 2
    assert _count(metrics, "written") == 2


async def test_proxies_in_the_same_minute_write_once_between_them(store: SharedStore) -> None:
    stored = store.issue()
    proxies = [_proxy(store) for _ in range(3)]
    for recorder, cache, _ in proxies:
        cache.store_fetched(stored, cache.begin(stored.record.key_id))
        recorder.note(stored, NOW)
    await asyncio.gather(*(recorder.flush() for recorder, _, _ in proxies))
    assert store.writes == 1
    results = {r: sum(_count(m, r) for _, _, m in proxies) for r in ("written", "current")}
    assert results == {"written": 1, "current": 2}


async def test_the_watch_tells_other_proxies_the_minute_is_stored(store: SharedStore) -> None:
    stored = store.issue()
    first, second = _proxy(store), _proxy(store)
    for _, cache, _ in (first, second):
        cache.store_fetched(stored, cache.begin(stored.record.key_id))
    first[0].note(stored, NOW)
    await first[0].flush()
    written = store.records[stored.record.key_id]
    # The watch event of that write reaches the second proxy before its next use.
    second[1].apply(
        KeyChanged(PREFIX + stored.record.key_id, written.mod_revision, written.record.encode())
    )
    cached = second[1].get(stored.record.key_id)
    assert cached is not None
    second[0].note(cached, NOW + 10)
    await second[0].flush()
    assert store.writes == 1


async def test_a_revoked_key_is_never_written_back(store: SharedStore) -> None:
    recorder, cache, metrics = _proxy(store)
    stored = store.issue()
    cache.store_fetched(stored, cache.begin(stored.record.key_id))
    recorder.note(stored, NOW)
    del store.records[stored.record.key_id]
    await recorder.flush()
    assert store.records == {}
    assert _count(metrics, "revoked") == 1


async def test_etcd_down_keeps_the_stamp_for_the_next_batch(store: SharedStore) -> None:
    recorder, _, metrics = _proxy(store)
    stored = store.issue()
    store.down = True
    recorder.start()
    recorder.note(stored, NOW)
    await asyncio.sleep(0.05)
    assert _count(metrics, "failed") >= 1
    store.down = False
    await recorder.stop()  # the pending stamp is written at shutdown at the latest
    assert store.records[stored.record.key_id].record.last_used_at == minute_of(NOW)
