"""Proxy overhead: the same client load direct to a stub upstream and through the proxy.

32 concurrent callers (targets: proxied throughput >= 0.5x direct, added median latency under
0.3 ms), then one caller alone, where the added latency is the proxy's own cost per call. The
proxy authenticates every call (root, cached after the first) and forwards raw bytes. A bare
grpc.aio forwarder (bench/bare_forwarder.py) runs the same load as the floor any Python gRPC
proxy pays; the proxy's CPU time per call is read from /proc. `--profile` runs the proxy
under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import sys
import tempfile
from pathlib import Path

import grpc

from bench.common import ROOT, Stats, cpu_seconds, etcd_and_proxy, load, stub_upstream, unary
from tests.harness.processes import ServerProcess, free_port, port_open
from tests.harness.proxy import ProxyProcess


async def measure(target: str, *, callers: int, calls: int, pid: int | None = None) -> Stats:
    """Warm up, then `callers` x `calls` GetVersion calls to `target` (and `pid`'s CPU time)."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = unary(channel, ROOT)
        await load(call, callers=callers, calls_per_caller=max(1, calls // 10))
        before = cpu_seconds(pid) if pid else 0.0
        stats = await load(call, callers=callers, calls_per_caller=calls)
        if pid:
            stats.cpu_per_call = (cpu_seconds(pid) - before) / len(stats.latencies)
        return stats


class BareForwarder(ServerProcess):
    """bench/bare_forwarder.py as a child process on a free port."""

    def __init__(self, upstream: str, workdir: Path, *, relay: bool = False) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        name = "bare-forwarder-relay" if relay else "bare-forwarder"
        super().__init__(
            name,
            [
                sys.executable,
                *("-m", "bench.bare_forwarder", upstream, str(port)),
                *(["--relay"] if relay else []),
            ],
            log_path=workdir / f"{name}.log",
            ready=lambda: port_open(port),
        )


async def run(*, calls: int = 300, callers: int = 32, profile: Path | None = None) -> None:
    """Print direct, bare-forwarder and proxied figures and their ratios."""
    async with stub_upstream() as upstream:
        with (
            etcd_and_proxy(upstream, profile=profile) as (_, proxy),
            tempfile.TemporaryDirectory() as scratch,
        ):
            bare = BareForwarder(upstream, Path(scratch))
            bare.start()
            try:
                for concurrency, per_caller in ((callers, calls), (1, calls * 4)):
                    await _compare(upstream, bare, proxy, concurrency, per_caller)
            finally:
                bare.stop()
    if profile is not None:
        print(f"-- proxy profile (top functions by own time; {profile})")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(12)


async def _compare(
    upstream: str, bare: BareForwarder, proxy: ProxyProcess, callers: int, calls: int
) -> None:
    assert bare.process is not None
    assert proxy.process is not None
    direct = await measure(upstream, callers=callers, calls=calls)
    floor = await measure(bare.address, callers=callers, calls=calls, pid=bare.process.pid)
    proxied = await measure(proxy.address, callers=callers, calls=calls, pid=proxy.process.pid)
    print(f"-- {callers} concurrent caller(s), GetVersion, auth on (cached)")
    print(direct.line("direct        "))
    print(floor.line("bare forwarder"))
    print(proxied.line("milvus-auth   "))
    print(
        f"CPU per call: bare forwarder {floor.cpu_per_call * 1e6:.0f} us, "
        f"milvus-auth proxy {proxied.cpu_per_call * 1e6:.0f} us"
    )
    added = (proxied.median() - direct.median()) * 1e3
    print(
        f"throughput ratio proxied/direct: {proxied.rate / direct.rate:.2f}x (target >= 0.5x); "
        f"added median latency: {added:.3f} ms (target < 0.3 ms); "
        f"bare forwarder adds {(floor.median() - direct.median()) * 1e3:.3f} ms"
    )


def main() -> None:
    """`python -m bench.overhead [--calls N] [--profile]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per caller")
    parser.add_argument("--profile", action="store_true", help="profile the proxy")
    args = parser.parse_args()
    profile = Path(tempfile.mkdtemp()) / "proxy.prof" if args.profile else None
    asyncio.run(run(calls=args.calls, profile=profile))


if __name__ == "__main__":
    main()
