"""The authenticator with a fake credential source: cache, single flight, coherence, etcd down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from milvus_auth.core import CredentialRecord, MalformedRecord, cache_digest, hash_password
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.headers import AUTH_CHECK_FAILURE, AuthFailure, Credentials
from milvus_auth.proxy.authn.ratelimit import FailureLimiter, RateLimitSettings
from milvus_auth.proxy.authn.verifier import AuthUnavailable
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import EtcdUnavailable, StoredCredential

PASSWORD = "right-password"
PEER = "ipv4:127.0.0.1:5000"
METHOD = "/milvus.proto.milvus.MilvusService/Connect"
NO_LIMITS = RateLimitSettings(user_burst=0, user_total_burst=0, peer_burst=0)


class FakeSource:
    """Records in memory; `delay` makes reads slow, `down` makes them fail like etcd."""

    def __init__(self) -> None:
        self.records: dict[str, StoredCredential] = {}
        self.reads = 0
        self.delay = 0.0
        self.down = False
        self.revision = 0

    def put(self, username: str, password: str) -> int:
        self.revision += 1
        record = CredentialRecord(username, hash_password(password, 4))
        self.records[username] = StoredCredential(record, self.revision)
        return self.revision

    async def get(self, username: str) -> StoredCredential | None:
        self.reads += 1
        found = self.records.get(username)  # read now, answered after the delay, like etcd
        await asyncio.sleep(self.delay)
        if self.down:
            raise EtcdUnavailable("etcd at 127.0.0.1:1 is unavailable (test)")
        if username == "broken":
            raise MalformedRecord("key/broken")
        return found


@pytest.fixture
def source() -> FakeSource:
    fake = FakeSource()
    fake.put("alice", PASSWORD)
    fake.put("bob", PASSWORD)
    return fake


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics()


@pytest.fixture
def pool(metrics: ProxyMetrics) -> Iterator[BcryptPool]:
    threads = BcryptPool(cost=4, metrics=metrics)
    yield threads
    threads.close()


def authenticator(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics, limits: RateLimitSettings
) -> Authenticator:
    return Authenticator(source, limiter=FailureLimiter(limits), pool=pool, metrics=metrics)


@pytest.fixture
def auth(source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics) -> Authenticator:
    return authenticator(source, pool, metrics, NO_LIMITS)


async def login(auth: Authenticator, username: str, password: str = PASSWORD) -> None:
    await auth.authenticate(Credentials(username, password), peer=PEER, method=METHOD)


async def refused(auth: Authenticator, username: str, password: str, peer: str = PEER) -> str:
    with pytest.raises(AuthFailure) as failure:
        await auth.authenticate(Credentials(username, password), peer=peer, method=METHOD)
    assert failure.value.message == AUTH_CHECK_FAILURE
    return failure.value.reason


async def test_a_miss_runs_bcrypt_once_then_hits(
    auth: Authenticator, metrics: ProxyMetrics
) -> None:
    await login(auth, "alice")
    await login(auth, "alice")
    assert metrics.bcrypt_runs() == 1
    assert auth.cache.cached("alice")


async def test_200_concurrent_first_calls_share_one_bcrypt(
    auth: Authenticator, source: FakeSource, metrics: ProxyMetrics
) -> None:
    source.delay = 0.01
    await asyncio.gather(*(login(auth, "alice") for _ in range(200)))
    assert metrics.bcrypt_runs() == 1
    assert source.reads == 1


async def test_wrong_passwords_are_never_cached(auth: Authenticator, metrics: ProxyMetrics) -> None:
    assert await refused(auth, "alice", "wrong-password") == "wrong_password"
    assert await refused(auth, "alice", "wrong-password") == "wrong_password"
    assert metrics.bcrypt_runs() == 2
    assert not auth.cache.cached("alice")


async def test_a_cached_user_with_another_password_costs_a_bcrypt_but_no_etcd_read(
    auth: Authenticator, source: FakeSource, metrics: ProxyMetrics
) -> None:
    await login(auth, "alice")
    reads = source.reads
    assert await refused(auth, "alice", "wrong-password") == "wrong_password"
    assert metrics.bcrypt_runs() == 2  # as long as anyone else's wrong password
    assert source.reads == reads


async def test_unknown_user_and_malformed_record_cost_a_bcrypt_like_a_wrong_password(
    auth: Authenticator, metrics: ProxyMetrics
) -> None:
    assert await refused(auth, "nobody", PASSWORD) == "unknown_user"
    assert metrics.bcrypt_runs() == 1
    assert await refused(auth, "broken", PASSWORD) == "malformed_record"
    assert metrics.bcrypt_runs() == 2
    assert await refused(auth, "alice", "wrong-password") == "wrong_password"
    assert metrics.bcrypt_runs() == 3


async def test_an_overlong_password_is_refused_without_bcrypt(
    auth: Authenticator, metrics: ProxyMetrics
) -> None:
    assert await refused(auth, "alice", "x" * 73) == "wrong_password"
    assert await refused(auth, "nobody", "x" * 73) == "wrong_password"
    assert metrics.bcrypt_runs() == 0


async def test_failures_are_rate_limited_before_bcrypt(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics
) -> None:
    limits = RateLimitSettings(user_burst=3, user_per_second=0.0, peer_burst=0)
    auth = authenticator(source, pool, metrics, limits)
    await login(auth, "bob")  # cached before the flood
    reasons = [await refused(auth, "alice", f"wrong-{i}") for i in range(10)]
    assert reasons.count("wrong_password") == 3
    assert reasons.count("rate_limited") == 7
    assert metrics.bcrypt_runs() == 1 + 3
    await login(auth, "bob")  # another user is not limited
    assert await refused(auth, "alice", PASSWORD) == "rate_limited"  # even the right one, for now


async def test_limits_per_client_address(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics
) -> None:
    limits = RateLimitSettings(user_burst=0, user_total_burst=0, peer_burst=2, peer_per_second=0)
    auth = authenticator(source, pool, metrics, limits)
    attacker = "ipv4:10.9.9.9:1"
    for name in ("u1", "u2"):
        assert await refused(auth, name, "whatever", attacker) == "unknown_user"
    assert await refused(auth, "alice", "whatever", "ipv4:10.9.9.9:2") == "rate_limited"
    await login(auth, "alice")  # from another address


async def test_a_change_drops_the_entry_but_an_older_event_does_not(
    auth: Authenticator, source: FakeSource
) -> None:
    await login(auth, "alice")
    revision = source.records["alice"].mod_revision
    auth.cache.record_changed("alice", revision)  # the event of the record it verified against
    assert auth.cache.cached("alice")
    auth.cache.record_changed("alice", revision + 10)
    assert not auth.cache.cached("alice")


async def test_a_change_during_verification_is_not_cached(
    auth: Authenticator, source: FakeSource
) -> None:
    source.delay = 0.05
    pending = asyncio.ensure_future(login(auth, "alice"))
    await asyncio.sleep(0.01)
    auth.cache.record_changed("alice", source.put("alice", "new-password"))
    await pending
    assert not auth.cache.cached("alice")


async def test_prewarm_then_invalidate(auth: Authenticator, metrics: ProxyMetrics) -> None:
    auth.cache.prewarm("alice", cache_digest("alice", PASSWORD))
    await login(auth, "alice")
    assert metrics.bcrypt_runs() == 0
    auth.invalidate("alice")
    assert not auth.cache.cached("alice")
    await login(auth, "alice")
    assert metrics.bcrypt_runs() == 1


async def test_prewarmed_entry_is_dropped_by_any_change(auth: Authenticator) -> None:
    auth.cache.prewarm("alice", cache_digest("alice", PASSWORD))
    auth.cache.record_changed("alice", 1)
    assert not auth.cache.cached("alice")


async def test_etcd_down_cached_users_pass_uncached_are_unavailable(
    auth: Authenticator, source: FakeSource
) -> None:
    await login(auth, "alice")
    source.down = True
    await login(auth, "alice")
    with pytest.raises(AuthUnavailable):
        await login(auth, "bob")
    assert await refused(auth, "alice", "wrong-password") == "wrong_password"


async def test_untrusted_cache_rechecks_revisions(
    auth: Authenticator, source: FakeSource, metrics: ProxyMetrics
) -> None:
    await login(auth, "alice")
    auth.cache.distrust()
    reads = source.reads
    await login(auth, "alice")
    assert source.reads == reads + 1
    assert metrics.bcrypt_runs() == 1  # same revision: no bcrypt
    source.put("alice", "new-password")  # changed while nobody watched
    assert await refused(auth, "alice", PASSWORD) == "wrong_password"
    await login(auth, "alice", "new-password")
    source.down = True
    await login(auth, "alice", "new-password")  # etcd gone too: the cache is all there is
    with pytest.raises(AuthUnavailable):
        await login(auth, "bob")


async def test_restore_after_missed_events_forgets_everything(auth: Authenticator) -> None:
    await login(auth, "alice")
    auth.cache.distrust()
    auth.cache.restore(missed=False)
    assert auth.cache.cached("alice")
    auth.cache.distrust()
    auth.cache.restore(missed=True)
    assert not auth.cache.cached("alice")
    assert auth.cache.trusted


async def test_failures_log_one_line_without_secrets(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await refused(auth, "alice", "Secret-Guess-42")
    await login(auth, "alice")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [f"auth failure user='alice' peer={PEER} method={METHOD} reason=wrong_password"]
    assert "Secret-Guess-42" not in caplog.text
    assert PASSWORD not in caplog.text
    assert cache_digest("alice", PASSWORD) not in caplog.text


async def test_a_concurrent_flood_is_bounded_by_the_burst(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics
) -> None:
    source.delay = 0.01  # every check is still running when the next attempts arrive
    limits = RateLimitSettings(user_burst=5, user_per_second=0.0, peer_burst=0)
    auth = authenticator(source, pool, metrics, limits)
    reasons = await asyncio.gather(*(refused(auth, "alice", f"wrong-{i}") for i in range(100)))
    assert metrics.bcrypt_runs() == 5
    assert reasons.count("rate_limited") == 95


async def test_successful_checks_give_their_token_back(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics
) -> None:
    limits = RateLimitSettings(user_burst=2, user_per_second=0.0, peer_burst=2)
    auth = authenticator(source, pool, metrics, limits)
    for _ in range(5):
        auth.invalidate("alice")
        await login(auth, "alice")
    assert await refused(auth, "alice", "wrong-1") == "wrong_password"
    assert await refused(auth, "alice", "wrong-2") == "wrong_password"
    assert await refused(auth, "alice", "wrong-3") == "rate_limited"


@pytest.mark.parametrize("username", ["x" * 180_000, "Secret-Pass!42", " alice", "alice\n"])
async def test_a_name_no_user_can_have_is_refused_before_cache_limiter_and_etcd(
    source: FakeSource,
    pool: BcryptPool,
    metrics: ProxyMetrics,
    caplog: pytest.LogCaptureFixture,
    username: str,
) -> None:
    limits = RateLimitSettings(user_burst=1, user_per_second=0.0, peer_burst=1)
    auth = authenticator(source, pool, metrics, limits)
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        assert await refused(auth, username, "alice") == "invalid_username"
    assert source.reads == 0
    assert metrics.bcrypt_runs() == 0
    assert not auth.cache.cached(username)
    assert username not in caplog.text
    assert "user=<invalid>" in caplog.text
    assert len(caplog.text) < 2_000
    await login(auth, "alice")  # neither alice's nor this address's budget was spent


async def test_an_old_password_is_checked_under_the_login_limits_in_the_pool(
    source: FakeSource, pool: BcryptPool, metrics: ProxyMetrics
) -> None:
    limits = RateLimitSettings(user_burst=2, user_per_second=0.0, peer_burst=0)
    auth = authenticator(source, pool, metrics, limits)
    hashed = source.records["alice"].record.encrypted_password
    assert await auth.check_password("alice", PASSWORD, hashed, peer=PEER)  # refunded
    assert not await auth.check_password("alice", "wrong-1", hashed, peer=PEER)
    assert not await auth.check_password("nobody", "wrong-1", None, peer=PEER)  # dummy hash
    assert metrics.bcrypt_runs() == 3
    assert not await auth.check_password("alice", "wrong-2", hashed, peer=PEER)
    assert not await auth.check_password("alice", PASSWORD, hashed, peer=PEER)  # limited
    assert metrics.bcrypt_runs() == 4
    assert await refused(auth, "alice", PASSWORD) == "rate_limited"  # one budget with logins
