"""The policy cache: RefreshPolicyInfoCache ops as Milvus applies them, and never stale allows."""

from __future__ import annotations

import asyncio

import pytest

from milvus_auth.core.errors import RbacError
from milvus_auth.core.grants import GrantTarget, Policy
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.roles import CacheOp, CacheRefresh, parse_cache_refresh
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.proxy.authz.cache import PolicyCache
from milvus_auth.proxy.errors import PolicyUnavailable
from milvus_auth.store import EtcdUnavailable

SEARCH_BOOKS = Policy("reader", "Collection-default.books", "PrivilegeSearch")


class Snapshots:
    """A snapshot source whose answer (or outage) the test sets."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot_value = snapshot
        self.down = False
        self.reads = 0

    async def snapshot(self) -> PolicySnapshot:
        self.reads += 1
        await asyncio.sleep(0)
        if self.down:
            raise EtcdUnavailable("etcd is down")
        return self.snapshot_value


def _snapshot(*, granted: bool = True, bound: bool = True, revision: int = 5) -> PolicySnapshot:
    target = GrantTarget("reader", ObjectType.COLLECTION, "default", "books")
    grants = (StoredGrant(target, "PrivilegeSearch", "root"),) if granted else ()
    return PolicySnapshot(
        revision=revision,
        roles=frozenset({"reader"}),
        bindings=frozenset({("ann", "reader")}) if bound else frozenset(),
        grants=grants,
    )


async def _ann_may_search(cache: PolicyCache) -> bool:
    policy = await cache.current()
    return "reader" in policy.roles_of("ann") and cache.permits(
        policy, "reader", SEARCH_BOOKS.object, SEARCH_BOOKS.privilege
    )


async def _loaded(source: Snapshots) -> PolicyCache:
    cache = PolicyCache(source)
    await cache.refresh()
    cache.trust()
    return cache


async def test_ops_one_to_six_change_the_cache_as_milvus_does() -> None:
    cache = await _loaded(Snapshots(_snapshot(granted=False, bound=False)))
    assert not await _ann_may_search(cache)
    await cache.apply(CacheRefresh.user_role(CacheOp.ADD_USER_TO_ROLE, "ann", "reader"))
    await cache.apply(CacheRefresh.policies(CacheOp.GRANT_PRIVILEGE, [SEARCH_BOOKS.to_json()]))
    assert await _ann_may_search(cache)
    await cache.apply(CacheRefresh.policies(CacheOp.REVOKE_PRIVILEGE, [SEARCH_BOOKS.to_json()]))
    assert not await _ann_may_search(cache)
    await cache.apply(CacheRefresh.policies(CacheOp.GRANT_PRIVILEGE, [SEARCH_BOOKS.to_json()]))
    await cache.apply(CacheRefresh.user_role(CacheOp.REMOVE_USER_FROM_ROLE, "ann", "reader"))
    assert not await _ann_may_search(cache)
    await cache.apply(CacheRefresh.user_role(CacheOp.ADD_USER_TO_ROLE, "ann", "reader"))
    await cache.apply(CacheRefresh(CacheOp.DELETE_USER, "ann"))
    assert not await _ann_may_search(cache)
    await cache.apply(CacheRefresh.user_role(CacheOp.ADD_USER_TO_ROLE, "ann", "reader"))
    assert await _ann_may_search(cache)
    await cache.apply(CacheRefresh(CacheOp.DROP_ROLE, "reader"))
    policy = await cache.current()
    assert policy.policies == frozenset()
    assert "reader" not in policy.roles_of("ann")


async def test_op_seven_reloads_from_etcd_and_bad_keys_get_milvus_texts() -> None:
    source = Snapshots(_snapshot(granted=False))
    cache = await _loaded(source)
    source.snapshot_value = _snapshot()
    assert not await _ann_may_search(cache)
    await cache.apply(parse_cache_refresh(7, ""))
    assert await _ann_may_search(cache)
    with pytest.raises(RbacError, match="invalid opKey, fail to decode, op_type: 1, op_key: x"):
        await cache.apply(parse_cache_refresh(1, "x"))
    with pytest.raises(RbacError, match="invalid opType, op_type: 9"):
        parse_cache_refresh(9, "k")
    with pytest.raises(RbacError, match="empty op key"):
        parse_cache_refresh(3, "")


async def test_a_watched_change_is_waited_for_never_answered_from_old_rows() -> None:
    source = Snapshots(_snapshot())
    cache = await _loaded(source)
    assert await _ann_may_search(cache)
    source.snapshot_value = _snapshot(granted=False)
    cache.changed()
    assert not await _ann_may_search(cache)


async def test_untrusted_reads_etcd_and_fails_closed_when_it_cannot() -> None:
    source = Snapshots(_snapshot())
    cache = await _loaded(source)
    cache.distrust()
    reads = source.reads
    assert await _ann_may_search(cache)
    assert source.reads > reads  # not answered from the cache alone
    source.down = True
    with pytest.raises(PolicyUnavailable):
        await cache.current()
    cache.trust()  # the watch is back: cached decisions are good again
    assert await _ann_may_search(cache)


async def test_a_change_seen_while_etcd_is_down_fails_closed() -> None:
    source = Snapshots(_snapshot())
    cache = await _loaded(source)
    source.down = True
    cache.changed()
    with pytest.raises(PolicyUnavailable):
        await cache.current()
    source.down = False
    assert await _ann_may_search(cache)


async def test_not_loaded_is_not_ready() -> None:
    source = Snapshots(_snapshot())
    source.down = True
    cache = PolicyCache(source)
    cache.trust()
    with pytest.raises(PolicyUnavailable):
        await cache.current()


async def test_an_older_snapshot_never_replaces_a_newer_one() -> None:
    cache = await _loaded(Snapshots(_snapshot(granted=False, revision=9)))
    cache.load(_snapshot(granted=True, revision=8))  # a reload that read before the revoke
    assert not await _ann_may_search(cache)
