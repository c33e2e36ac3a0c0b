"""Failed-login token buckets: per username and per client address, refilled over time."""

from __future__ import annotations

from milvus_auth.proxy.ratelimit import (
    FailureLimiter,
    RateLimitSettings,
    TokenBuckets,
    peer_address,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_failures_then_limited_then_refilled() -> None:
    clock = Clock()
    buckets = TokenBuckets(burst=3, per_second=0.5, max_keys=10, clock=clock)
    for _ in range(3):
        assert buckets.allows("alice")
        buckets.spend("alice")
    assert not buckets.allows("alice")
    assert buckets.allows("bob")
    clock.now += 2.0  # 0.5 per second: one token back
    assert buckets.allows("alice")
    buckets.spend("alice")
    assert not buckets.allows("alice")


def test_burst_zero_turns_the_limit_off() -> None:
    buckets = TokenBuckets(burst=0, per_second=0, max_keys=10, clock=Clock())
    for _ in range(100):
        buckets.spend("alice")
    assert buckets.allows("alice")


def test_memory_is_bounded_by_forgetting_the_oldest_key() -> None:
    buckets = TokenBuckets(burst=1, per_second=0.0, max_keys=2, clock=Clock())
    for key in ("a", "b", "c"):
        buckets.spend(key)
    assert buckets.allows("a")  # forgotten, so full again
    assert not buckets.allows("b")
    assert not buckets.allows("c")


def test_limiter_checks_user_and_address_separately() -> None:
    clock = Clock()
    settings = RateLimitSettings(user_burst=2, user_per_second=0, peer_burst=3, peer_per_second=0)
    limiter = FailureLimiter(settings, clock=clock)
    limiter.record_failure("alice", "ipv4:10.0.0.1:1000")
    limiter.record_failure("alice", "ipv4:10.0.0.1:1001")  # another connection, same client
    assert not limiter.allows("alice", "ipv4:10.0.0.2:5")
    assert limiter.allows("bob", "ipv4:10.0.0.1:1002")
    limiter.record_failure("bob", "ipv4:10.0.0.1:1003")
    assert not limiter.allows("carol", "ipv4:10.0.0.1:1004")
    assert limiter.allows("carol", "ipv4:10.0.0.9:1")


def test_peer_address_drops_the_port() -> None:
    assert peer_address("ipv4:10.0.0.1:5123") == "10.0.0.1"
    assert peer_address("ipv6:[::1]:5123") == "::1"
    assert peer_address("unix:/tmp/sock") == "unix:/tmp/sock"
