"""Wrong-password flood: one user attacked at 1,000 attempts/s while good users work, through
a proxy with 1 worker and then with 2.

bcrypt runs stay within the failure rate limit (per username: burst + rate x seconds, for all
workers together), the attacker gets Milvus's UNAUTHENTICATED every time, and cached good
users' p99 stays within 2x of idle. Through the real proxy process (default limits) and a stub
upstream; the attacked user exists with a cost-10 hash and is never cached (wrong passwords
never are). Each good user calls over a connection of its own, so with 2 workers the kernel
spreads them over both; the attacker's one connection lands on one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from bench.burst import OWN_CONNECTION, other_client
from bench.common import (
    Stats,
    create_users,
    etcd_and_proxy,
    stub_upstream,
    tree_cpu_seconds,
    users_load,
)
from milvus_auth.proxy.authn.ratelimit import RateLimitSettings

PASSWORD = "Flood-Good-Pass-1"
GOOD_USERS = [f"good{i}" for i in range(4)]


@dataclass(frozen=True)
class Flooded:
    """What one flood did to one proxy."""

    attack: dict[str, Any]
    idle: Stats
    busy: Stats
    bcrypt_runs: int
    rate_limited: float
    cpu: float


@contextlib.asynccontextmanager
async def _own_channels(address: str, count: int) -> AsyncIterator[list[grpc.aio.Channel]]:
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(
                grpc.aio.insecure_channel(address, options=OWN_CONNECTION)
            )
            for _ in range(count)
        ]
        yield channels


async def _good_users(channels: list[grpc.aio.Channel], calls: int) -> Stats:
    results = await asyncio.gather(
        *(
            users_load(channel, [user], PASSWORD, calls)
            for channel, user in zip(channels, GOOD_USERS, strict=True)
        )
    )
    return Stats(
        [latency for stats in results for latency in stats.latencies],
        max(stats.elapsed for stats in results),
        ends=[end for stats in results for end in stats.ends],
    )


async def flood(
    upstream: str, *, workers: int, rate: float, seconds: float, good_calls: int, cost: int
) -> Flooded:
    """One proxy with `workers` workers: good users idle, then under the flood."""
    with etcd_and_proxy(upstream, workers=workers) as (etcd, proxy):
        passwords = dict.fromkeys(GOOD_USERS, PASSWORD) | {"victim": "Victim-Pass-1"}
        await create_users(etcd, passwords, cost=cost)
        async with _own_channels(proxy.address, len(GOOD_USERS)) as channels:
            await _good_users(channels, 5)
            idle = await _good_users(channels, good_calls)
            before = proxy.bcrypt_runs()
            flags = ("--rate", str(rate), "--seconds", str(seconds))
            _, go = await other_client(proxy.address, "victim", "wrong", *flags)
            assert proxy.process is not None
            cpu = tree_cpu_seconds(proxy.process.pid)
            attack, busy = await asyncio.gather(go(), _good_users(channels, good_calls))
            cpu = tree_cpu_seconds(proxy.process.pid) - cpu
            return Flooded(
                attack=attack,
                idle=idle,
                busy=busy,
                bcrypt_runs=proxy.bcrypt_runs() - before,
                rate_limited=proxy.metric("auth_total", result="failure", reason="rate_limited"),
                cpu=cpu,
            )


async def run(
    *, rate: float = 1000.0, seconds: float = 3.0, good_calls: int = 300, cost: int = 10
) -> None:
    """Print bcrypt runs against the limit and good users' latency, idle and under flood, for
    1 and 2 workers."""
    limits = RateLimitSettings()
    ratios = {}
    async with stub_upstream() as upstream:
        for workers in (1, 2):
            found = await flood(
                upstream,
                workers=workers,
                rate=rate,
                seconds=seconds,
                good_calls=good_calls,
                cost=cost,
            )
            took = found.attack["seconds"]
            bound = limits.user_burst + limits.user_per_second * took
            ratios[workers] = found.busy.p99() / found.idle.p99()
            print(
                f"-- {workers} worker(s): {int(rate * seconds)} wrong passwords for one user "
                f"over {took:.1f} s"
            )
            print(
                f"  attacker's answers: {found.attack['codes']}; "
                f"refused by the rate limit: {found.rate_limited:.0f}"
            )
            print(
                f"  bcrypt runs: {found.bcrypt_runs} (bound by the limit, all workers together: "
                f"{bound:.0f} = burst + rate x seconds)"
            )
            print(found.busy.line("  good users under flood"))
            print(found.idle.line("  good users idle       "))
            print(f"  good users' p99 flood/idle: {ratios[workers]:.2f}x (target <= 2x)")
            calls = len(found.busy.latencies) + rate * seconds
            print(
                f"  proxy CPU meanwhile (all processes): {found.cpu / found.busy.elapsed:.0%} of "
                f"one core ({found.cpu / calls * 1e6:.0f} us per call, any outcome)"
            )
    print(f"good users' p99 flood/idle, 2 workers vs 1: {ratios[2]:.2f}x vs {ratios[1]:.2f}x")


def main() -> None:
    """`python -m bench.flood [--rate N] [--seconds S]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(run(rate=args.rate, seconds=args.seconds))


if __name__ == "__main__":
    main()
