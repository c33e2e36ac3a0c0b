"""API keys: the cached check beside a cached password check, 1,000 cold keys at once, and
revocation reaching three proxies.

1. Cached decision, in-process on the real authenticators (records served from memory): header
   parse + API-key check and header parse + password check, timed in alternating batches of one
   run. Target: API-key median <= 10 us, the same order as the password check.
2. First use of 1,000 distinct keys, all at once, through the real proxy process on a real etcd
   (stub upstream): wall time, etcd reads by record (target <= 1 per key), bcrypt runs
   (target 0), and the same 1,000 calls again once cached.
3. Revocation: a key deleted from etcd (as `milvus-auth apikeys revoke` does), and the time
   until all of three proxies refuse it, with no internal RPC. Target: p95 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc

from bench.auth_cache import METHOD, PEER, MemorySource
from bench.common import GET_VERSION, META_ROOT, create_users, header, stub_upstream
from milvus_auth.core import CredentialRecord, hash_password
from milvus_auth.core.apikeys import ApiKey, ApiKeyRecord, generate_api_key
from milvus_auth.proxy.authn.apikey_auth import ApiKeyAuthenticator
from milvus_auth.proxy.authn.apikey_cache import ApiKeyCache
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.headers import (
    ApiKeyToken,
    authorization_values,
    parse_authorization,
    read_authorization,
)
from milvus_auth.proxy.authn.ratelimit import FailureLimiter, RateLimitSettings
from milvus_auth.proxy.authn.usage import UsageRecorder
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import ApiKeyStore, Endpoint, EtcdSettings, StoredApiKey, StoredCredential
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyProcess

PASSWORD = "Bench-Pass-1"
USERS = [f"etl{i}" for i in range(10)]
BATCH = 500  # checks per alternating batch


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def key_header(key: ApiKey) -> tuple[tuple[str, str], ...]:
    """The `authorization` metadata a client sends with `key` as its token."""
    return (("authorization", base64.b64encode(key.token.encode()).decode()),)


class MemoryKeys:
    """Key records in a dict: the store without etcd's round trip."""

    def __init__(self, records: dict[str, StoredApiKey]) -> None:
        self.records = records

    async def get(self, key_id: str) -> StoredApiKey | None:
        """The record, at once."""
        return self.records.get(key_id)

    async def touch(self, stored: StoredApiKey, when: int) -> int:
        """Accepted and forgotten (the writer is not started here)."""
        return stored.mod_revision


async def cached(*, checks: int = 20_000, cost: int = 10) -> tuple[float, float]:
    """Print the cached API-key and password medians and p99s; return both medians."""
    metrics = ProxyMetrics()
    pool = BcryptPool(cost=cost, metrics=metrics)
    limiter = FailureLimiter(RateLimitSettings())
    hashed = await asyncio.to_thread(hash_password, PASSWORD, cost)
    users = MemorySource({"etl": StoredCredential(CredentialRecord("etl", hashed), 1)})
    passwords = Authenticator(users, limiter=limiter, pool=pool, metrics=metrics)
    key = generate_api_key()
    record = ApiKeyRecord(key.key_id, "etl", key.secret_hash, int(time.time()))
    keys = MemoryKeys({key.key_id: StoredApiKey(record, 1)})
    cache = ApiKeyCache(lambda name: name)
    api_keys = ApiKeyAuthenticator(
        keys,
        users,
        cache=cache,
        user_cache=passwords.cache,
        limiter=limiter,
        metrics=metrics,
        usage=UsageRecorder(keys, cache, metrics),
    )
    key_metadata, password_metadata = key_header(key), header("etl", PASSWORD)

    async def key_check() -> None:
        token = read_authorization(authorization_values(key_metadata))
        assert isinstance(token, ApiKeyToken)  # the benchmark's own input
        await api_keys.authenticate(token.text, peer=PEER, method=METHOD)

    async def password_check() -> None:
        credentials = parse_authorization(authorization_values(password_metadata))
        await passwords.authenticate(credentials, peer=PEER, method=METHOD)

    try:
        await key_check()  # both caches warm before timing
        await password_check()
        bcrypts = metrics.bcrypt_runs()
        samples: dict[str, list[float]] = {"key": [], "password": []}
        for _ in range(max(1, checks // BATCH)):
            for name, check in (("key", key_check), ("password", password_check)):
                for _ in range(min(BATCH, checks)):
                    started = time.perf_counter()
                    await check()
                    samples[name].append(time.perf_counter() - started)
        bcrypts = metrics.bcrypt_runs() - bcrypts
    finally:
        pool.close()
    medians = {name: statistics.median(found) for name, found in samples.items()}
    for name, label in (("key", "API key"), ("password", "password")):
        p99 = _percentile(samples[name], 0.99)
        print(
            f"cached {label} check (header parse + cache check), {len(samples[name])} checks: "
            f"median {medians[name] * 1e6:.2f} us, p99 {p99 * 1e6:.2f} us"
        )
    print(
        f"API key / password median: {medians['key'] / medians['password']:.2f}x "
        f"(target: API key median <= 10 us); bcrypt runs while timing: {bcrypts}"
    )
    return medians["key"], medians["password"]


def _settings(etcd: EtcdServer) -> EtcdSettings:
    return EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),))


async def issue_keys(
    etcd: EtcdServer, count: int, users: Sequence[str] = tuple(USERS)
) -> list[ApiKey]:
    """`count` keys for `users` in turn, written as `apikeys create` writes them."""
    now = int(time.time())
    keys = [generate_api_key() for _ in range(count)]
    async with ApiKeyStore(_settings(etcd), META_ROOT) as store:
        for index, key in enumerate(keys):
            user = users[index % len(users)]
            await store.create(ApiKeyRecord(key.key_id, user, key.secret_hash, now))
    return keys


@contextlib.contextmanager
def _etcd_and_proxies(upstream: str, count: int) -> Iterator[tuple[EtcdServer, list[ProxyProcess]]]:
    with tempfile.TemporaryDirectory(prefix="milvus-auth-bench-") as directory:
        workdir = Path(directory)
        etcd = EtcdServer(workdir)
        etcd.start()
        proxies: list[ProxyProcess] = []
        try:
            for index in range(count):
                proxy = ProxyProcess(
                    workdir,
                    etcd_endpoint=etcd.endpoint,
                    meta_root=META_ROOT,
                    upstream=upstream,
                    extra_args=["--log-level", "error"],
                    name=f"p{index}",
                )
                proxy.start()
                proxies.append(proxy)
            yield etcd, proxies
        finally:
            for proxy in proxies:
                proxy.stop()
            etcd.stop()


async def _all_at_once(channel: grpc.aio.Channel, keys: list[ApiKey]) -> float:
    call = channel.unary_unary(GET_VERSION)
    started = time.perf_counter()
    await asyncio.gather(*(call(b"", metadata=key_header(key), timeout=60) for key in keys))
    return time.perf_counter() - started


async def cold(*, keys: int = 1000) -> None:
    """Print the wall time, etcd reads and bcrypt runs of `keys` first uses at once."""
    async with stub_upstream() as upstream:
        with _etcd_and_proxies(upstream, 1) as (etcd, (proxy,)):
            await create_users(etcd, dict.fromkeys(USERS, PASSWORD), cost=4)
            issued = await issue_keys(etcd, keys)
            async with grpc.aio.insecure_channel(proxy.address) as channel:
                first = await _all_at_once(channel, issued)
                reads = {
                    r: proxy.metric("api_key_etcd_reads_total", record=r) for r in ("key", "user")
                }
                bcrypts = proxy.bcrypt_runs()
                again = await _all_at_once(channel, issued)
    print(
        f"first use of {keys} distinct keys at once: {first * 1e3:.0f} ms wall; etcd reads: "
        f"{reads['key']:.0f} key records ({reads['key'] / keys:.2f} per key, target <= 1), "
        f"{reads['user']:.0f} user records ({len(USERS)} users); bcrypt runs: {bcrypts} (target 0)"
    )
    print(
        f"the same {keys} calls once cached: {again * 1e3:.0f} ms wall "
        f"({first / again:.2f}x the cold wall time)"
    )


async def _refuses(proxy: ProxyProcess, metadata: tuple[tuple[str, str], ...]) -> bool:
    async with grpc.aio.insecure_channel(proxy.address) as channel:
        try:
            await channel.unary_unary(GET_VERSION)(b"", metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


async def _until(
    proxy: ProxyProcess, metadata: tuple[tuple[str, str], ...], *, refused: bool
) -> None:
    while await _refuses(proxy, metadata) is not refused:
        pass


async def revocation(*, revocations: int = 20, proxies: int = 3) -> tuple[float, float]:
    """Print p50/p95 from the etcd delete to every proxy refusing; return them (seconds)."""
    samples: list[float] = []
    async with stub_upstream() as upstream:
        with _etcd_and_proxies(upstream, proxies) as (etcd, started):
            await create_users(etcd, dict.fromkeys(USERS, PASSWORD), cost=4)
            issued = await issue_keys(etcd, revocations)
            async with ApiKeyStore(_settings(etcd), META_ROOT) as store:
                for key in issued:
                    metadata = key_header(key)
                    await asyncio.gather(*(_until(p, metadata, refused=False) for p in started))
                    began = time.perf_counter()
                    await store.delete(key.key_id)
                    await asyncio.gather(*(_until(p, metadata, refused=True) for p in started))
                    samples.append(time.perf_counter() - began)
    p50, p95 = statistics.median(samples), _percentile(samples, 0.95)
    print(
        f"revocation (etcd delete) -> all {proxies} proxies refuse, {len(samples)} revocations: "
        f"p50 {p50 * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms (target: p95 < 1 s; no internal RPC)"
    )
    return p50, p95


async def run(
    *, checks: int = 20_000, cost: int = 10, keys: int = 1000, revocations: int = 20
) -> None:
    """Every API-key figure, in order."""
    await cached(checks=checks, cost=cost)
    await cold(keys=keys)
    await revocation(revocations=revocations)


def main() -> None:
    """`python -m bench.apikeys [--checks N] [--keys N] [--revocations N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--revocations", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(checks=args.checks, keys=args.keys, revocations=args.revocations))


if __name__ == "__main__":
    main()
