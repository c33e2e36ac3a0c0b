"""API-key logins with fake etcd reads: cache by id, single flight, coherence, limits, etcd down."""

from __future__ import annotations

import asyncio
import logging

import pytest

from milvus_auth.core import CredentialRecord, MalformedRecord
from milvus_auth.core.apikeys import API_KEY_FAILURE, ApiKey, ApiKeyRecord, generate_api_key
from milvus_auth.proxy.authn.apikey_auth import ApiKeyAuthenticator
from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.authn.cache import CredentialCache
from milvus_auth.proxy.authn.headers import AuthFailure
from milvus_auth.proxy.authn.ratelimit import FailureLimiter, RateLimitSettings
from milvus_auth.proxy.authn.verifier import AuthUnavailable
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import (
    EtcdUnavailable,
    KeyChanged,
    StoredApiKey,
    StoredCredential,
    WatchLost,
    WatchRestored,
)

PEER = "ipv4:127.0.0.1:5000"
METHOD = "'/milvus.proto.milvus.MilvusService/Query'"
PREFIX = "meta/milvus-auth/api-keys/"
NOW = 1_800_000_000.0


class FakeEtcd:
    """Key and user records in memory; `gate` holds reads, `down` fails them like etcd."""

    def __init__(self) -> None:
        self.keys: dict[str, StoredApiKey] = {}
        self.users: dict[str, StoredCredential] = {}
        self.key_reads = 0
        self.user_reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False
        self.revision = 10

    def issue(self, username: str = "etl", expires_at: int | None = None) -> ApiKey:
        key = generate_api_key()
        self.revision += 1
        record = ApiKeyRecord(key.key_id, username, key.secret_hash, int(NOW) - 60, expires_at)
        self.keys[key.key_id] = StoredApiKey(record, self.revision)
        return key

    def add_user(self, username: str) -> None:
        self.revision += 1
        self.users[username] = StoredCredential(CredentialRecord(username, "$2a$04$x"), 1)

    async def get(self, key_id: str) -> StoredApiKey | None:
        self.key_reads += 1
        found = self.keys.get(key_id)  # read now, answered when the gate opens, like etcd
        await self.gate.wait()
        if self.down:
            raise EtcdUnavailable("etcd at 127.0.0.1:1 is unavailable (test)")
        return found


class Users:
    def __init__(self, etcd: FakeEtcd) -> None:
        self.etcd = etcd

    async def get(self, username: str) -> StoredCredential | None:
        self.etcd.user_reads += 1
        if self.etcd.down:
            raise EtcdUnavailable("etcd at 127.0.0.1:1 is unavailable (test)")
        if username == "broken":
            raise MalformedRecord("key/broken")
        return self.etcd.users.get(username)


class Notes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def note(self, stored: StoredApiKey, now: float) -> None:
        self.seen.append((stored.record.key_id, now))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def etcd() -> FakeEtcd:
    fake = FakeEtcd()
    fake.add_user("etl")
    return fake


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def user_cache() -> CredentialCache:
    return CredentialCache()


@pytest.fixture
def auth(
    etcd: FakeEtcd,
    metrics: ProxyMetrics,
    clock: Clock,
    notes: Notes,
    user_cache: CredentialCache,
) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        etcd,
        Users(etcd),
        cache=ApiKeyCache(lambda key: key.removeprefix(PREFIX)),
        user_cache=user_cache,
        limiter=FailureLimiter(RateLimitSettings()),
        metrics=metrics,
        usage=notes,
        clock=clock,
    )


async def _refusal(auth: ApiKeyAuthenticator, token: str, peer: str = PEER) -> str:
    with pytest.raises(AuthFailure) as refused:
        await auth.authenticate(token, peer=peer, method=METHOD)
    assert refused.value.message == API_KEY_FAILURE
    return refused.value.reason


async def test_a_key_is_read_once_then_served_from_the_cache(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd, notes: Notes, metrics: ProxyMetrics
) -> None:
    key = etcd.issue()
    for _ in range(5):
        assert await auth.authenticate(key.token, peer=PEER, method=METHOD) == "etl"
    assert (etcd.key_reads, etcd.user_reads) == (1, 1)
    assert notes.seen == [(key.key_id, NOW)] * 5
    assert metrics.api_key_results.labels("success", "verified")._value.get() == 1
    assert metrics.api_key_cached._value.get() == 4
    assert metrics.bcrypt_runs() == 0


async def test_concurrent_misses_share_one_read(auth: ApiKeyAuthenticator, etcd: FakeEtcd) -> None:
    key = etcd.issue()
    etcd.gate.clear()
    calls = [
        asyncio.ensure_future(auth.authenticate(key.token, peer=PEER, method=METHOD))
        for _ in range(200)
    ]
    await asyncio.sleep(0.01)
    etcd.gate.set()
    assert set(await asyncio.gather(*calls)) == {"etl"}
    assert (etcd.key_reads, etcd.user_reads) == (1, 1)


async def test_each_refusal_has_its_reason_and_milvus_text(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    good = etcd.issue()
    expiring = etcd.issue(expires_at=int(NOW) + 30)
    etcd.add_user("gone")
    orphan = etcd.issue("gone")
    broken = etcd.issue("broken")
    caplog.set_level(logging.WARNING)
    assert await _refusal(auth, "") == "api_key_malformed"
    assert await _refusal(auth, "mak_" + "\ufffd" * 59) == "api_key_malformed"
    assert await _refusal(auth, f"mak_{good.key_id}_{generate_api_key().secret}") == (
        "api_key_wrong_secret"
    )
    assert await _refusal(auth, generate_api_key().token) == "api_key_unknown_key"
    assert await auth.authenticate(expiring.token, peer=PEER, method=METHOD) == "etl"
    clock.now = NOW + 30  # the proxy's own clock decides, no etcd change needed
    assert await _refusal(auth, expiring.token) == "api_key_expired"
    del etcd.users["gone"]
    assert await _refusal(auth, orphan.token) == "api_key_user_not_found"
    assert await _refusal(auth, broken.token) == "api_key_user_not_found"
    for key in (good, expiring, orphan):
        assert key.secret not in caplog.text
    assert f"key={expiring.key_id}" in caplog.text


async def test_a_deleted_user_is_seen_through_the_credential_cache(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd, user_cache: CredentialCache
) -> None:
    key = etcd.issue()
    assert await auth.authenticate(key.token, peer=PEER, method=METHOD) == "etl"
    del etcd.users["etl"]
    assert await auth.authenticate(key.token, peer=PEER, method=METHOD) == "etl"  # still known
    user_cache.record_deleted("etl", 99)  # the credential watch's event
    assert await _refusal(auth, key.token) == "api_key_user_not_found"


async def test_watch_events_replace_drop_and_distrust_entries(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd
) -> None:
    key = etcd.issue()
    await auth.authenticate(key.token, peer=PEER, method=METHOD)
    stored = auth.cache.get(key.key_id)
    assert stored is not None
    touched = stored.record.used_at(int(NOW))
    auth.cache.apply(KeyChanged(PREFIX + key.key_id, stored.mod_revision + 1, touched.encode()))
    assert auth.cache.get(key.key_id) == StoredApiKey(touched, stored.mod_revision + 1)
    await auth.authenticate(key.token, peer=PEER, method=METHOD)
    assert etcd.key_reads == 1  # another proxy's stamp costs no read here

    auth.cache.apply(KeyChanged(PREFIX + key.key_id, stored.mod_revision, b"", deleted=True))
    assert auth.cache.get(key.key_id) is not None  # an older event, replayed: ignored
    auth.cache.apply(WatchLost())
    await auth.authenticate(key.token, peer=PEER, method=METHOD)
    assert etcd.key_reads == 2  # untrusted: etcd is asked
    auth.cache.apply(WatchRestored(missed=True))
    assert len(auth.cache) == 0

    await auth.authenticate(key.token, peer=PEER, method=METHOD)
    del etcd.keys[key.key_id]
    auth.cache.apply(KeyChanged(PREFIX + key.key_id, etcd.revision + 5, b"", deleted=True))
    assert await _refusal(auth, key.token) == "api_key_unknown_key"


async def test_a_read_racing_a_revocation_is_not_cached(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd
) -> None:
    key = etcd.issue()
    etcd.gate.clear()
    racing = asyncio.ensure_future(auth.authenticate(key.token, peer=PEER, method=METHOD))
    await asyncio.sleep(0.01)
    del etcd.keys[key.key_id]
    auth.cache.apply(KeyChanged(PREFIX + key.key_id, etcd.revision + 1, b"", deleted=True))
    etcd.gate.set()
    assert await racing == "etl"  # read before the revocation: answered, never cached
    assert auth.cache.get(key.key_id) is None
    assert await _refusal(auth, key.token) == "api_key_unknown_key"


async def test_the_internal_rpc_drop_makes_the_next_use_read(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd
) -> None:
    key = etcd.issue()
    await auth.authenticate(key.token, peer=PEER, method=METHOD)
    auth.cache.invalidate(key.key_id)
    del etcd.keys[key.key_id]
    assert await _refusal(auth, key.token) == "api_key_unknown_key"
    assert etcd.key_reads == 2


async def test_unknown_ids_are_rate_limited_before_etcd(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd
) -> None:
    unknown = generate_api_key()
    reasons = [await _refusal(auth, unknown.token) for _ in range(15)]
    assert reasons[:10] == ["api_key_unknown_key"] * 10  # RateLimitSettings.user_burst
    assert reasons[10:] == ["api_key_rate_limited"] * 5
    assert etcd.key_reads == 10
    # Another address is not limited for that id; the limited address still uses good keys.
    assert await _refusal(auth, unknown.token, peer="ipv4:10.0.0.9:1") == "api_key_unknown_key"
    good = etcd.issue()
    assert await auth.authenticate(good.token, peer=PEER, method=METHOD) == "etl"


async def test_etcd_down_refuses_unknown_keys_and_keeps_cached_ones(
    auth: ApiKeyAuthenticator, etcd: FakeEtcd, metrics: ProxyMetrics
) -> None:
    known, cold = etcd.issue(), etcd.issue()
    await auth.authenticate(known.token, peer=PEER, method=METHOD)
    auth.cache.apply(WatchLost())
    etcd.down = True
    assert await auth.authenticate(known.token, peer=PEER, method=METHOD) == "etl"
    with pytest.raises(AuthUnavailable):
        await auth.authenticate(cold.token, peer=PEER, method=METHOD)
    assert metrics.api_key_results.labels("unavailable", "etcd_unavailable")._value.get() == 1
