"""Cold start: 200 concurrent first calls for one user run exactly one bcrypt, and users already
cached keep their latency meanwhile (target: their p99 within 2x of idle).

Through the real proxy process and a stub upstream; users are stored with bcrypt cost 10. The
200 calls come from another process (bench/burst.py), as they would from other clients. A
control burst of the same size from an already-cached user, and one lone first call, show
what the bcrypt itself costs the cached users and what the burst costs.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc

from bench.burst import other_client
from bench.common import (
    Stats,
    create_users,
    etcd_and_proxy,
    stub_upstream,
    users_load,
)
from tests.harness.proxy import ProxyProcess

PASSWORD = "Cold-Start-Pass-1"
WARM_USERS = [f"warm{i}" for i in range(4)]


async def burst_beside_warm_load(
    proxy: ProxyProcess, channel: grpc.aio.Channel, user: str, count: int, warm_calls: int
) -> tuple[dict[str, Any], Stats]:
    """`count` concurrent calls as `user` from another process, beside the cached users."""
    _, go = await other_client(proxy.address, user, PASSWORD, "--concurrent", str(count))
    result, warm = await asyncio.gather(go(), users_load(channel, WARM_USERS, PASSWORD, warm_calls))
    return result, warm


async def run(*, first_calls: int = 200, warm_calls: int = 150, cost: int = 10) -> None:
    """Print the bcrypt count and the cached users' latency, idle and during the cold start."""
    async with stub_upstream() as upstream:
        with etcd_and_proxy(upstream) as (etcd, proxy):
            users = [*WARM_USERS, "cold", "lone"]
            await create_users(etcd, dict.fromkeys(users, PASSWORD), cost=cost)
            async with grpc.aio.insecure_channel(proxy.address) as channel:
                await users_load(channel, WARM_USERS, PASSWORD, 5)  # every warm user is now cached
                idle = await users_load(channel, WARM_USERS, PASSWORD, warm_calls)
                _, control = await burst_beside_warm_load(
                    proxy, channel, WARM_USERS[0], first_calls, warm_calls
                )
                before = proxy.bcrypt_runs()
                cold, busy = await burst_beside_warm_load(
                    proxy, channel, "cold", first_calls, warm_calls
                )
                runs = proxy.bcrypt_runs() - before
                lone, beside = await burst_beside_warm_load(proxy, channel, "lone", 1, warm_calls)
    during = busy.until(cold["first_end"])
    alone = beside.until(lone["first_end"])
    print(f"cold start: {first_calls} concurrent first calls for one user (bcrypt cost {cost})")
    print(f"  answers: {cold['codes']}, all within {cold['last_end'] - cold['started']:.3f} s")
    print(f"  bcrypt runs: {runs} (target: exactly 1)")
    print(idle.line("  cached users idle                  "))
    print(during.line("  cached users until the first answer"))
    print(busy.line("  cached users, whole cold start     "))
    print(control.line("  same burst from a cached user      "))
    print(alone.line("  cached users beside one lone bcrypt"))
    ratios = [
        ("until the first answer", during),
        ("whole cold start", busy),
        ("same burst without bcrypt", control),
        ("beside one lone bcrypt", alone),
    ]
    shown = ", ".join(
        f"{label} {stats.p99() / idle.p99():.2f}x" for label, stats in ratios if stats.latencies
    )
    print(f"  cached users' p99 / idle (target <= 2x): {shown}")


def main() -> None:
    """`python -m bench.cold_start`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-calls", type=int, default=200)
    asyncio.run(run(first_calls=parser.parse_args().first_calls))


if __name__ == "__main__":
    main()
