"""Wrong-password flood: one user attacked at 1,000 attempts/s while good users work.

bcrypt runs stay within the failure rate limit (per username: burst + rate x seconds), the
attacker gets Milvus's UNAUTHENTICATED every time, and cached good users' p99 stays within 2x
of idle. Through the real proxy process (default limits) and a stub upstream; the attacked
user exists with a cost-10 hash and is never cached (wrong passwords never are).
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from bench.burst import other_client
from bench.common import (
    cpu_seconds,
    create_users,
    etcd_and_proxy,
    stub_upstream,
    users_load,
)
from milvus_auth.proxy.authn.ratelimit import RateLimitSettings

PASSWORD = "Flood-Good-Pass-1"
GOOD_USERS = [f"good{i}" for i in range(4)]


async def run(
    *, rate: float = 1000.0, seconds: float = 3.0, good_calls: int = 300, cost: int = 10
) -> None:
    """Print bcrypt runs against the limit and good users' latency, idle and under flood."""
    limits = RateLimitSettings()
    async with stub_upstream() as upstream:
        with etcd_and_proxy(upstream) as (etcd, proxy):
            passwords = dict.fromkeys(GOOD_USERS, PASSWORD) | {"victim": "Victim-Pass-1"}
            await create_users(etcd, passwords, cost=cost)
            async with grpc.aio.insecure_channel(proxy.address) as channel:
                await users_load(channel, GOOD_USERS, PASSWORD, 5)
                idle = await users_load(channel, GOOD_USERS, PASSWORD, good_calls)
                before = proxy.bcrypt_runs()
                flags = ("--rate", str(rate), "--seconds", str(seconds))
                _, go = await other_client(proxy.address, "victim", "wrong", *flags)
                assert proxy.process is not None
                cpu = cpu_seconds(proxy.process.pid)
                attack, busy = await asyncio.gather(
                    go(), users_load(channel, GOOD_USERS, PASSWORD, good_calls)
                )
                cpu = cpu_seconds(proxy.process.pid) - cpu
                runs = proxy.bcrypt_runs() - before
                limited = proxy.metric("auth_total", result="failure", reason="rate_limited")
    took = attack["seconds"]
    bound = limits.user_burst + limits.user_per_second * took
    print(f"wrong-password flood: {int(rate * seconds)} attempts on one user over {took:.1f} s")
    print(f"  attacker's answers: {attack['codes']}; refused by the rate limit: {limited:.0f}")
    print(f"  bcrypt runs: {runs} (bound by the limit: {bound:.0f} = burst + rate x seconds)")
    print(busy.line("  good users under flood"))
    print(idle.line("  good users idle       "))
    print(f"  good users' p99 flood/idle: {busy.p99() / idle.p99():.2f}x (target <= 2x)")
    print(
        f"  proxy CPU meanwhile: {cpu / busy.elapsed:.0%} of one core "
        f"({cpu / (len(busy.latencies) + rate * seconds) * 1e6:.0f} us per call, any outcome)"
    )


def main() -> None:
    """`python -m bench.flood [--rate N] [--seconds S]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(run(rate=args.rate, seconds=args.seconds))


if __name__ == "__main__":
    main()
