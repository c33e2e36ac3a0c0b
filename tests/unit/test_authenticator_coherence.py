"""Watch events applied to a real authenticator's cache (events from a fake stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from milvus_auth.core import cache_digest
from milvus_auth.proxy.authn import coherence
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.coherence import Coherence, apply
from milvus_auth.proxy.authn.ratelimit import FailureLimiter, RateLimitSettings
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import (
    StoredCredential,
    UserChanged,
    UserDeleted,
    WatchEvent,
    WatchLost,
    WatchRestored,
)


class NoRecords:
    async def get(self, username: str) -> StoredCredential | None:
        return None


@pytest.fixture
def auth() -> Iterator[Authenticator]:
    metrics = ProxyMetrics()
    pool = BcryptPool(cost=4, metrics=metrics)
    authenticator = Authenticator(
        NoRecords(), limiter=FailureLimiter(RateLimitSettings()), pool=pool, metrics=metrics
    )
    authenticator.cache.prewarm("alice", cache_digest("alice", "pw-alice"))
    authenticator.cache.prewarm("bob", cache_digest("bob", "pw-bob"))
    yield authenticator
    pool.close()


def test_changes_and_deletes_drop_only_that_user(auth: Authenticator) -> None:
    apply(UserChanged("alice", 7), auth.cache)
    assert not auth.cache.cached("alice")
    assert auth.cache.cached("bob")
    apply(UserDeleted("bob", 8), auth.cache)
    assert not auth.cache.cached("bob")


def test_a_prewarm_tagged_with_its_revision_survives_that_write(auth: Authenticator) -> None:
    # The operator writes the record at revision 9, then pre-warms with revision 9; the watch
    # event of that write may arrive after the RPC and must not undo it.
    auth.cache.prewarm("carol", cache_digest("carol", "pw-carol"), 9)
    apply(UserChanged("carol", 9), auth.cache)
    assert auth.cache.cached("carol")
    apply(UserChanged("carol", 10), auth.cache)  # a later write does drop it
    assert not auth.cache.cached("carol")


def test_a_later_delete_drops_a_tagged_prewarm(auth: Authenticator) -> None:
    auth.cache.prewarm("carol", cache_digest("carol", "pw-carol"), 9)
    apply(UserDeleted("carol", 11), auth.cache)
    assert not auth.cache.cached("carol")


def test_a_delete_drops_an_entry_whatever_revision_it_was_tagged_with(
    auth: Authenticator,
) -> None:
    # A tag from the future (forged, which the internal port now refuses) must not pin it.
    auth.cache.prewarm("carol", cache_digest("carol", "forged-1"), 10**18)
    apply(UserChanged("carol", 12), auth.cache)
    assert auth.cache.cached("carol")
    apply(UserDeleted("carol", 13), auth.cache)
    assert not auth.cache.cached("carol")


def test_lost_then_restored(auth: Authenticator) -> None:
    apply(WatchLost(), auth.cache)
    assert not auth.cache.trusted
    apply(WatchRestored(missed=False), auth.cache)
    assert auth.cache.trusted
    assert auth.cache.cached("alice")
    apply(WatchLost(), auth.cache)
    apply(WatchRestored(missed=True), auth.cache)
    assert not auth.cache.cached("alice")


async def test_a_failing_watch_leaves_the_cache_untrusted_and_restarts(
    auth: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coherence, "RESTART_DELAY", 0.01)
    opened: list[int] = []

    async def events() -> AsyncIterator[WatchEvent]:
        opened.append(1)
        yield UserChanged("alice", 3)
        raise RuntimeError("a bug in the watch")

    watcher = Coherence.of_credentials(events, auth.cache)
    watcher.start()
    await asyncio.sleep(0.1)
    await watcher.stop()
    assert len(opened) >= 2
    assert not auth.cache.trusted
    assert not auth.cache.cached("alice")
    assert auth.cache.cached("bob")
