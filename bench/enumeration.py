"""User enumeration by timing: a wrong password for a real user against any unknown username.

Through the real proxy process (bcrypt cost as configured, rate limits off so every attempt is
checked) and a stub upstream. Three kinds of refused login are timed side by side, one of each
in turn: an existing user's wrong password, a cached (recently logged-in) user's wrong
password, and a username with no record. Target: every median within 1.2x of the existing
user's, so the answer time does not tell which usernames exist.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc

from bench.common import GET_VERSION, Stats, create_users, etcd_and_proxy, header, stub_upstream

KNOWN = "known"
CACHED = "cached"
UNKNOWN = "nobody_here"
TARGET = 1.2


async def _refused_in(channel: grpc.aio.Channel, user: str, password: str) -> float:
    call = channel.unary_unary(GET_VERSION)
    started = time.perf_counter()
    try:
        await call(b"", metadata=header(user, password), timeout=30)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
    else:
        raise AssertionError(f"a wrong password for {user} was accepted")
    return time.perf_counter() - started


async def run(*, samples: int = 60, cost: int = 10) -> float:
    """Print the three medians and their ratios; return the worst ratio (1.0 is ideal)."""
    async with stub_upstream() as upstream:
        with etcd_and_proxy(
            upstream,
            *("--bcrypt-cost", str(cost)),
            *("--rate-limit-user-burst", "0", "--rate-limit-user-total-burst", "0"),
            *("--rate-limit-peer-burst", "0"),
        ) as (etcd, proxy):
            await create_users(etcd, {KNOWN: "Known-Pass-1", CACHED: "Cached-Pass-1"}, cost=cost)
            async with grpc.aio.insecure_channel(proxy.address) as channel:
                await channel.unary_unary(GET_VERSION)(
                    b"", metadata=header(CACHED, "Cached-Pass-1"), timeout=30
                )
                timings: dict[str, list[float]] = {KNOWN: [], CACHED: [], UNKNOWN: []}
                for i in range(samples):
                    for user, latencies in timings.items():
                        latencies.append(await _refused_in(channel, user, f"Wrong-{i}"))
                bcrypt_runs = proxy.bcrypt_runs()
    known = Stats(timings[KNOWN], 1.0).median()
    print(f"refused logins, {samples} of each kind in turn, bcrypt cost {cost}:")
    worst = 1.0
    for user, label in (
        (KNOWN, "existing user, wrong password"),
        (CACHED, "cached user, wrong password  "),
        (UNKNOWN, "unknown user                 "),
    ):
        median = Stats(timings[user], 1.0).median()
        ratio = median / known
        worst = max(worst, ratio, 1 / ratio)
        print(f"  {label}: median {median * 1e3:6.2f} ms  ({ratio:.2f}x the existing user's)")
    print(f"  bcrypt runs: {bcrypt_runs} for {3 * samples + 1} logins")
    print(f"  worst ratio: {worst:.2f}x (target: within {TARGET}x)")
    return worst


def main() -> None:
    """`python -m bench.enumeration [--samples N] [--cost C]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--cost", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(samples=args.samples, cost=args.cost))


if __name__ == "__main__":
    main()
