"""Wrong-password flood: one user attacked at 1,000 attempts/s while good users work, through
a proxy with 1 worker and then with 2.

bcrypt runs stay within the failure rate limit (per username: burst + rate x seconds, for all
workers together), the attacker gets Milvus's UNAUTHENTICATED every time, and cached good
users' p99 stays within 2x of idle. Through the real proxy process (default limits) and a stub
upstream; the attacked user exists with a cost-10 hash and is never cached (wrong passwords
never are). The attacker is h2load (bench/h2load.py, a C client at a fixed rate on one
connection, one wrong password repeated: the limiter counts failures, whatever the password),
so the flood's own cost on these few cores is small next to the proxy's; a Python attacker
took as much CPU as the proxy it attacked. Each good user calls over a connection of its own,
spread evenly over the workers; the attacker's one connection lands on one of them, and good
users' p99 is also shown apart for those on that worker and those elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.burst import OWN_CONNECTION
from bench.common import (
    GET_VERSION,
    Stats,
    create_users,
    etcd_and_proxy,
    header,
    stub_upstream,
    tree_cpu_seconds,
    users_load,
)
from bench.h2load import Load, grpc_body, h2load
from milvus_auth.proxy.authn.ratelimit import RateLimitSettings
from tests.harness.proxy import ProxyProcess
from tests.harness.workers import accepted

PASSWORD = "Flood-Good-Pass-1"
GOOD_USERS = [f"good{i}" for i in range(4)]


@dataclass(frozen=True)
class Flooded:
    """What one flood did to one proxy; good users' figures are per user, in `GOOD_USERS`
    order, with the worker each one's connection reached."""

    attack: Load
    idle: list[Stats]
    busy: list[Stats]
    workers: list[int]
    attacked: int
    """The worker the attacker's connection reached."""
    bcrypt_runs: int
    refused: float
    """Calls answered UNAUTHENTICATED for a wrong password, by the limiter or after a bcrypt."""
    rate_limited: float
    cpu: float
    inside: bool
    """Whether the good users' calls under flood all ended before the flood did."""

    def of(self, stats: list[Stats], *, attacked: bool | None = None) -> Stats:
        """Good users' calls together: all, or those on (or off) the attacked worker."""
        chosen = [
            one
            for one, worker in zip(stats, self.workers, strict=True)
            if attacked is None or (worker == self.attacked) == attacked
        ]
        return Stats(
            [latency for one in chosen for latency in one.latencies],
            max((one.elapsed for one in chosen), default=0.0),
        )


class Connections:
    """Which worker of the proxy accepts each new connection (from /proc)."""

    def __init__(self, proxy: ProxyProcess) -> None:
        self._port = proxy.port
        self._pids = proxy.worker_pids()

    def snapshot(self) -> list[set[str]]:
        return [accepted(pid, self._port) for pid in self._pids]

    def new_one(self, before: list[set[str]]) -> int:
        """The worker that accepted a connection since `before`."""
        (worker,) = self.new(before)
        return worker

    def new(self, before: list[set[str]]) -> list[int]:
        """The workers that accepted a connection since `before`."""
        return [
            index
            for index, (now, then) in enumerate(zip(self.snapshot(), before, strict=True))
            if now - then
        ]

    async def arrival(self, before: list[set[str]]) -> int:
        """The worker that accepts the next connection, waiting up to 5 s for it."""
        for _ in range(100):
            found = self.new(before)
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise TimeoutError("the attacker did not connect within 5 s")


async def _good_users(channels: list[grpc.aio.Channel], calls: int) -> list[Stats]:
    return list(
        await asyncio.gather(
            *(
                users_load(channel, [user], PASSWORD, calls)
                for channel, user in zip(channels, GOOD_USERS, strict=True)
            )
        )
    )


async def flood(
    upstream: str, *, workers: int, rate: float, seconds: float, good_calls: int, cost: int
) -> Flooded:
    """One proxy with `workers` workers: good users idle, then under the flood."""
    with etcd_and_proxy(upstream, workers=workers) as (etcd, proxy):
        passwords = dict.fromkeys(GOOD_USERS, PASSWORD) | {"victim": "Victim-Pass-1"}
        await create_users(etcd, passwords, cost=cost)
        connections = Connections(proxy)
        async with contextlib.AsyncExitStack() as stack:
            channels: list[grpc.aio.Channel] = []
            reached: list[int] = []
            share = -(-len(GOOD_USERS) // workers)
            while len(channels) < len(GOOD_USERS):
                # The kernel picks a worker by a hash of the addresses: a connection to a
                # worker that already has its share of good users is closed and made again.
                before = connections.snapshot()
                channel = grpc.aio.insecure_channel(proxy.address, options=OWN_CONNECTION)
                await channel.channel_ready()
                worker = connections.new_one(before)
                if reached.count(worker) >= share:
                    await channel.close()
                    continue
                stack.push_async_callback(channel.close)
                channels.append(channel)
                reached.append(worker)
            await _good_users(channels, 5)
            idle = await _good_users(channels, good_calls)
            before_runs = proxy.bcrypt_runs()
            before = connections.snapshot()
            assert proxy.process is not None
            cpu = tree_cpu_seconds(proxy.process.pid)
            with tempfile.TemporaryDirectory(prefix="milvus-auth-flood-") as scratch:
                body = Path(scratch) / "get-version.grpc"
                body.write_bytes(grpc_body(b""))
                flood_start = time.monotonic()
                attacker = asyncio.create_task(
                    h2load(
                        proxy.address,
                        GET_VERSION,
                        body,
                        requests=int(rate * seconds),
                        connections=1,
                        streams=32,
                        headers=header("victim", "wrong"),
                        rate=rate,
                    )
                )
                attacked = await connections.arrival(before)
                busy = await _good_users(channels, good_calls)
                good_took = time.monotonic() - flood_start
                attack = await attacker
            cpu = tree_cpu_seconds(proxy.process.pid) - cpu
            return Flooded(
                attack=attack,
                idle=idle,
                busy=busy,
                workers=reached,
                attacked=attacked,
                bcrypt_runs=proxy.bcrypt_runs() - before_runs,
                refused=proxy.metric("auth_total", result="failure"),
                rate_limited=proxy.metric("auth_total", result="failure", reason="rate_limited"),
                cpu=cpu,
                # h2load's own duration, from its first call to its last answer.
                inside=good_took <= attack.seconds,
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
            took = found.attack.seconds
            bound = limits.user_burst + limits.user_per_second * took
            busy, idle = found.of(found.busy), found.of(found.idle)
            ratios[workers] = busy.p99() / idle.p99()
            print(
                f"-- {workers} worker(s): {int(rate * seconds)} wrong passwords for one user "
                f"over {took:.1f} s (h2load, one connection)"
            )
            print(
                f"  attacker's calls answered: {found.attack.succeeded}, refused "
                f"UNAUTHENTICATED: {found.refused:.0f}, of which by the rate limit: "
                f"{found.rate_limited:.0f}"
            )
            print(
                f"  bcrypt runs: {found.bcrypt_runs} (bound by the limit, all workers together: "
                f"{bound:.0f} = burst + rate x seconds)"
            )
            print(busy.line("  good users under flood"))
            print(idle.line("  good users idle       "))
            print(
                f"  good users' p99 flood/idle: {ratios[workers]:.2f}x (target <= 2x); "
                f"their calls all ended inside the flood: {found.inside}"
            )
            if workers > 1:
                print(
                    f"  good users' connections per worker: {found.workers}; attacker's: "
                    f"worker {found.attacked}"
                )
                for attacked, where in ((True, "on the attacked worker"), (False, "elsewhere")):
                    flooded = found.of(found.busy, attacked=attacked)
                    calm = found.of(found.idle, attacked=attacked)
                    if flooded.latencies:
                        print(
                            f"  good users {where}: p99 {flooded.p99() * 1e3:.3f} ms, "
                            f"flood/idle {flooded.p99() / calm.p99():.2f}x"
                        )
            calls = len(busy.latencies) + rate * seconds
            print(
                f"  proxy CPU meanwhile (all processes): {found.cpu / took:.0%} of "
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
