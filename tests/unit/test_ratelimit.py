"""Failed-login token buckets: per username and per client address, refilled over time."""

from __future__ import annotations

from milvus_auth.proxy.authn.ratelimit import (
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


ALICE_FROM_A = ("alice", "ipv4:10.0.0.1:1000")


def test_one_address_flooding_a_user_does_not_lock_out_other_addresses() -> None:
    clock = Clock()
    settings = RateLimitSettings(
        user_burst=10, user_per_second=1.0, user_total_burst=100, user_total_per_second=10.0
    )
    limiter = FailureLimiter(settings, clock=clock)
    for port in range(50):  # new connections do not reset the address's budget
        if limiter.allows("alice", f"ipv4:10.0.0.1:{port}"):
            limiter.record_failure("alice", f"ipv4:10.0.0.1:{port}")
    assert not limiter.allows(*ALICE_FROM_A)
    assert limiter.allows("alice", "ipv4:10.0.0.2:5")  # alice from anywhere else
    assert limiter.allows("bob", "ipv4:10.0.0.1:6")  # and the flooding address for others
    clock.now += 1.0  # one token back for the pair
    assert limiter.allows(*ALICE_FROM_A)


def test_many_addresses_together_reach_the_users_ceiling() -> None:
    clock = Clock()
    settings = RateLimitSettings(
        user_burst=3, user_per_second=0.0, user_total_burst=10, user_total_per_second=1.0
    )
    limiter = FailureLimiter(settings, clock=clock)
    for host in range(4):
        for _ in range(3):
            if limiter.allows("alice", f"ipv4:10.0.1.{host}:1"):
                limiter.record_failure("alice", f"ipv4:10.0.1.{host}:1")
    assert not limiter.allows("alice", "ipv4:10.0.2.1:1")  # 10 failures: everyone waits
    assert limiter.allows("bob", "ipv4:10.0.2.1:1")
    clock.now += 1.0
    assert limiter.allows("alice", "ipv4:10.0.2.1:1")


def test_an_address_is_limited_over_all_usernames() -> None:
    settings = RateLimitSettings(user_burst=2, user_per_second=0, peer_burst=3, peer_per_second=0)
    limiter = FailureLimiter(settings, clock=Clock())
    for name in ("u1", "u2", "u3"):
        limiter.record_failure(name, "ipv4:10.0.0.1:1")
    assert not limiter.allows("carol", "ipv4:10.0.0.1:2")
    assert limiter.allows("carol", "ipv4:10.0.0.9:1")


def test_a_refund_returns_the_token_to_every_bucket() -> None:
    settings = RateLimitSettings(
        user_burst=1, user_per_second=0, user_total_burst=2, peer_burst=1, peer_per_second=0
    )
    limiter = FailureLimiter(settings, clock=Clock())
    limiter.record_failure(*ALICE_FROM_A)
    assert not limiter.allows(*ALICE_FROM_A)
    limiter.refund(*ALICE_FROM_A)
    assert limiter.allows(*ALICE_FROM_A)


def test_peer_address_drops_the_port() -> None:
    assert peer_address("ipv4:10.0.0.1:5123") == "10.0.0.1"
    assert peer_address("ipv6:[::1]:5123") == "::1"
    assert peer_address("unix:/tmp/sock") == "unix:/tmp/sock"
