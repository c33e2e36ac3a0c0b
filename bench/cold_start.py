"""Cold start: 200 concurrent first calls for one user run exactly one bcrypt, and users already
cached keep their latency meanwhile (target: their p99 within 2x of idle).

Through the real proxy process and a stub upstream; users are stored with bcrypt cost 10.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from bench.common import Stats, create_users, etcd_and_proxy, header, load, stub_upstream, unary

PASSWORD = "Cold-Start-Pass-1"
WARM_USERS = [f"warm{i}" for i in range(4)]
# The burst comes from other clients: on the cached users' own HTTP/2 connection, 200 calls
# waiting for the bcrypt would hold the connection's stream slots and queue them client-side.
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)


async def warm_load(channel: grpc.aio.Channel, calls: int) -> Stats:
    """Each cached user calling back to back, together."""
    results = await asyncio.gather(
        *(
            load(unary(channel, header(user, PASSWORD)), callers=1, calls_per_caller=calls)
            for user in WARM_USERS
        )
    )
    return Stats(
        [latency for stats in results for latency in stats.latencies],
        max(stats.elapsed for stats in results),
        ends=[end for stats in results for end in stats.ends],
    )


async def run(*, first_calls: int = 200, warm_calls: int = 150, cost: int = 10) -> None:
    """Print the bcrypt count and the cached users' latency, idle and during the cold start."""
    async with stub_upstream() as upstream:
        with etcd_and_proxy(upstream) as (etcd, proxy):
            await create_users(
                etcd, dict.fromkeys([*WARM_USERS, "cold", "lone"], PASSWORD), cost=cost
            )
            async with (
                grpc.aio.insecure_channel(proxy.address) as channel,
                grpc.aio.insecure_channel(proxy.address, options=OWN_CONNECTION) as others,
            ):
                await warm_load(channel, 5)  # every warm user is now cached
                idle = await warm_load(channel, warm_calls)
                # Control: the same burst from a user already cached, so no bcrypt at all.
                hot = unary(others, header(WARM_USERS[0], PASSWORD))
                _, control = await asyncio.gather(
                    load(hot, callers=first_calls, calls_per_caller=1),
                    warm_load(channel, warm_calls),
                )
                before = proxy.bcrypt_runs()
                cold = unary(others, header("cold", PASSWORD))
                first, busy = await asyncio.gather(
                    load(cold, callers=first_calls, calls_per_caller=1),
                    warm_load(channel, warm_calls),
                )
                runs = proxy.bcrypt_runs() - before
                # One first call alone: the bcrypt without 200 calls released at once after it.
                lone = unary(others, header("lone", PASSWORD))
                single, beside = await asyncio.gather(
                    load(lone, callers=1, calls_per_caller=1), warm_load(channel, warm_calls)
                )
    print(f"cold start: {first_calls} concurrent first calls for one user (bcrypt cost {cost})")
    print(first.line("  first calls      "))
    print(f"  bcrypt runs: {runs} (target: exactly 1)")
    print(idle.line("  cached users idle           "))
    # Until the first cold call returns, the bcrypt is running; after it, the proxy forwards
    # the 200 released calls at once, a burst any proxy would queue behind.
    during = busy.until(min(first.ends))
    print(during.line("  cached users during the bcrypt"))
    print(busy.line("  cached users, whole cold start"))
    print(control.line("  same burst, user cached (control)"))
    alone = beside.until(min(single.ends))
    print(alone.line("  cached users while one lone bcrypt runs"))
    during_ratio = f"{during.p99() / idle.p99():.2f}x" if during.latencies else "n/a"
    print(
        f"  cached users' p99 during the bcrypt / idle: {during_ratio} "
        f"(target <= 2x); whole cold start / idle: {busy.p99() / idle.p99():.2f}x; "
        f"cold start / same burst without bcrypt: {busy.p99() / control.p99():.2f}x"
    )
    if alone.latencies:
        print(
            f"  cached users' p99 while a lone bcrypt runs / idle: {alone.p99() / idle.p99():.2f}x"
        )


def main() -> None:
    """`python -m bench.cold_start`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-calls", type=int, default=200)
    asyncio.run(run(first_calls=parser.parse_args().first_calls))


if __name__ == "__main__":
    main()
