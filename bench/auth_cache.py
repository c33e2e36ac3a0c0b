"""Cached auth decision: the time to parse a header and authenticate a cached user.

Measured in-process on the real `Authenticator` (records served from memory, so only the
decision is timed). The same run times a cache miss (etcd read replaced by memory, bcrypt at
cost 10 as Milvus stores new hashes since 2026), so the printed ratio is what the cache saves.
Target: median under 10 us.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.common import header
from milvus_auth.core import CredentialRecord, hash_password
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.headers import authorization_values, parse_authorization
from milvus_auth.proxy.authn.ratelimit import FailureLimiter, RateLimitSettings
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.store import StoredCredential

PASSWORD = "Bench-Pass-1"
PEER = "ipv4:127.0.0.1:40000"
METHOD = "/milvus.proto.milvus.MilvusService/Search"


class MemorySource:
    """Credential records in a dict: the store without etcd's round trip."""

    def __init__(self, records: dict[str, StoredCredential]) -> None:
        self.records = records

    async def get(self, username: str) -> StoredCredential | None:
        """The record, at once."""
        return self.records.get(username)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run(*, checks: int = 20_000, cost: int = 10) -> float:
    """Print the cached and uncached figures; return the cached median in seconds."""
    hashed = await asyncio.to_thread(hash_password, PASSWORD, cost)
    source = MemorySource({"alice": StoredCredential(CredentialRecord("alice", hashed), 1)})
    limiter = FailureLimiter(RateLimitSettings())
    metrics = ProxyMetrics()
    pool = BcryptPool(cost=cost, metrics=metrics)
    auth = Authenticator(source, limiter=limiter, pool=pool, metrics=metrics)
    metadata = header("alice", PASSWORD)
    try:
        started = time.perf_counter()
        await auth.authenticate(
            parse_authorization(["YWxpY2U6QmVuY2gtUGFzcy0x"]), peer=PEER, method=METHOD
        )
        miss = time.perf_counter() - started
        samples: list[float] = []
        for _ in range(checks):
            started = time.perf_counter()
            credentials = parse_authorization(authorization_values(metadata))
            await auth.authenticate(credentials, peer=PEER, method=METHOD)
            samples.append(time.perf_counter() - started)
    finally:
        pool.close()
    median = statistics.median(samples)
    print(
        f"cached auth decision (header parse + cache check), {checks} checks: "
        f"median {median * 1e6:.2f} us, p99 {_percentile(samples, 0.99) * 1e6:.2f} us "
        f"(target: median < 10 us)"
    )
    print(
        f"first login (cache miss, bcrypt cost {cost}): {miss * 1e3:.1f} ms; "
        f"the cache makes a check {miss / median:,.0f}x cheaper"
    )
    return median


def main() -> None:
    """`python -m bench.auth_cache [--checks N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    asyncio.run(run(checks=parser.parse_args().checks))


if __name__ == "__main__":
    main()
