"""Throughput with a C load generator: h2load drives one unary gRPC call at 4 connections x 8
streams against (a) the stub upstream directly, (b) the bare grpc.aio forwarder, (c) milvus-auth
with 1 worker and (d) milvus-auth with 2 workers.

Printed for each: calls per second, p50/p99 (from h2load's per-request log), the proxy's CPU per
call (its whole process tree, from /proc), and the CPU the stub and h2load took, since on a
machine with few cores they share the cores with the proxy: the rate ratio (d)/(c) is bounded by
what they leave, the CPU per call is not. Every run is checked: the stub must have answered
every call (h2load counts a gRPC error as an HTTP 200). `make h2load` installs h2load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import GET_VERSION, ROOT, Stub, etcd_and_proxy, stub_server, tree_cpu_seconds
from bench.overhead import BareForwarder
from tests.harness.processes import children
from tests.harness.workers import accepted

CONNECTIONS = 4
STREAMS = 8
# A gRPC message frame: not compressed (0), length 0; GetVersionRequest has no fields.
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class Run:
    """One measured h2load run."""

    calls: int
    seconds: float
    p50: float
    p99: float
    mean: float
    proxy_cpu: float
    """CPU seconds of the proxy's process tree (0 when there is no proxy)."""
    stub_cpu: float
    h2load_cpu: float
    spread: list[int]
    """Connections each proxy process held during the run."""
    tries: int = 1
    """Runs made to get connections split evenly over the workers (see `Load.run`)."""

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def per_call(self, cpu: float) -> float:
        """CPU microseconds per call."""
        return cpu / self.calls * 1e6

    def line(self, label: str) -> str:
        proxy = f", proxy CPU {self.per_call(self.proxy_cpu):.0f} us/call" if self.proxy_cpu else ""
        spread = ""
        if len(self.spread) > 1:
            spread = f", connections per worker {self.spread} (run {self.tries})"
        return (
            f"{label}: {self.rate:,.0f}/s, p50 {self.p50 * 1e3:.2f} ms, "
            f"p99 {self.p99 * 1e3:.2f} ms, mean {self.mean * 1e3:.2f} ms{proxy}; "
            f"stub {self.per_call(self.stub_cpu):.0f} us/call, "
            f"h2load {self.per_call(self.h2load_cpu):.0f} us/call{spread}"
        )


def h2load_binary() -> str:
    """h2load's path, or exit with how to install it."""
    found = shutil.which("h2load")
    if found is None:
        sys.exit("bench/throughput.py needs h2load: run `make h2load` (Debian nghttp2-client)")
    return found


class Load:
    """h2load against one address, with the stub whose calls it checks."""

    def __init__(self, stub: Stub, workdir: Path) -> None:
        self._stub = stub
        self._workdir = workdir
        self._body = workdir / "get-version.grpc"
        self._body.write_bytes(EMPTY_MESSAGE)
        self._binary = h2load_binary()

    async def run(
        self, address: str, calls: int, proxy_pid: int | None = None, *, tries: int = 6
    ) -> Run:
        """A warm-up, then `calls` calls; the figures of the second.

        The kernel gives each connection to a worker by a hash of its addresses, so 4
        connections land 2-2 on two workers only 3 times in 8; a run with another split is
        made again, up to `tries` runs, and the run's number is printed with its split.
        """
        await self._h2load(address, max(200, calls // 10))
        attempt = 1
        measured = await self._measure(address, calls, proxy_pid)
        while (
            attempt < tries
            and max(measured.spread, default=0) - min(measured.spread, default=0) > 1
        ):
            attempt += 1
            measured = await self._measure(address, calls, proxy_pid)
        return dataclasses.replace(measured, tries=attempt)

    async def _measure(self, address: str, calls: int, proxy_pid: int | None) -> Run:
        log = self._workdir / "requests.tsv"
        log.unlink(missing_ok=True)  # h2load appends to its log file
        before_stub = self._stub.calls
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proxy_before = tree_cpu_seconds(proxy_pid) if proxy_pid else 0.0
        process, spread = await self._h2load(address, calls, log, proxy_pid=proxy_pid)
        proxy_cpu = tree_cpu_seconds(proxy_pid) - proxy_before if proxy_pid else 0.0
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        answered = self._stub.calls - before_stub
        if answered != calls:
            raise RuntimeError(f"the stub answered {answered} of {calls} calls:\n{process}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line]
        if any(row[1] != "200" for row in rows):
            raise RuntimeError(f"h2load saw HTTP failures:\n{process}")
        starts = [int(row[0]) for row in rows]
        latencies = sorted(int(row[2]) / 1e6 for row in rows)
        ends = [int(row[0]) + int(row[2]) for row in rows]
        return Run(
            calls=calls,
            seconds=(max(ends) - min(starts)) / 1e6,
            p50=statistics.median(latencies),
            p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            mean=statistics.fmean(latencies),
            proxy_cpu=proxy_cpu,
            stub_cpu=_cpu(self_after) - _cpu(self_before),
            h2load_cpu=_cpu(children_after) - _cpu(children_before),
            spread=spread,
        )

    async def _h2load(
        self, address: str, calls: int, log: Path | None = None, proxy_pid: int | None = None
    ) -> tuple[str, list[int]]:
        argv = [
            self._binary,
            *("-n", str(calls), "-c", str(CONNECTIONS), "-m", str(STREAMS)),
            *("-H", "content-type: application/grpc", "-H", "te: trailers"),
            *("-H", f"authorization: {ROOT[0][1]}", "-d", str(self._body)),
        ]
        if log is not None:
            argv.append(f"--log-file={log}")
        argv.append(f"http://{address}{GET_VERSION}")
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        spread: list[int] = []
        if proxy_pid is not None:
            await asyncio.sleep(0.3)  # connected by now; the run lasts seconds
            port = int(address.rsplit(":", 1)[1])
            spread = [len(accepted(pid, port)) for pid in children(proxy_pid) or [proxy_pid]]
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"h2load failed:\n{output.decode()}")
        return output.decode(), spread


def _ratio(top: float, bottom: float) -> str:
    return f"{top / bottom:.2f}x" if bottom else "n/a"


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def _proxy(upstream: str, workers: int) -> AsyncIterator[tuple[str, int]]:
    with etcd_and_proxy(upstream, workers=workers) as (_, proxy):
        assert proxy.process is not None
        yield proxy.address, proxy.process.pid


async def run(*, calls: int = 10_000) -> None:
    """Print the four runs and their ratios."""
    loads = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="milvus-auth-throughput-") as directory:
        workdir = Path(directory)
        async with stub_server() as (upstream, stub):
            load = Load(stub, workdir)
            direct = await load.run(upstream, calls)
            bare = BareForwarder(upstream, workdir)
            bare.start()
            try:
                assert bare.process is not None
                floor = await load.run(bare.address, calls, bare.process.pid)
            finally:
                bare.stop()
            proxied: list[Run] = []
            for workers in (1, 2):
                async with _proxy(upstream, workers) as (address, pid):
                    proxied.append(await load.run(address, calls, pid))
    one, two = proxied
    print(
        f"-- GetVersion (auth on, root cached), {CONNECTIONS} connections x {STREAMS} streams, "
        f"{calls} calls each, h2load; load average before/after: "
        f"{loads[0]:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print(direct.line("(a) direct to the stub  "))
    print(floor.line("(b) bare grpc.aio       "))
    print(one.line("(c) milvus-auth 1 worker "))
    print(two.line("(d) milvus-auth 2 workers"))
    print(
        f"rate: (c)/(b) {_ratio(one.rate, floor.rate)}, (d)/(c) {_ratio(two.rate, one.rate)}, "
        f"(c)/(a) {_ratio(one.rate, direct.rate)}, (d)/(a) {_ratio(two.rate, direct.rate)}"
    )
    print(
        f"proxy CPU per call: (c)/(b) {_ratio(one.proxy_cpu, floor.proxy_cpu)}, "
        f"(d)/(c) {_ratio(two.proxy_cpu, one.proxy_cpu)} (1.00x = workers add no cost per call)"
    )
    cores = len(os.sched_getaffinity(0))
    busy = [run.proxy_cpu + run.stub_cpu + run.h2load_cpu for run in (one, two)]
    print(
        f"cores busy during (c): {busy[0] / one.seconds:.2f}, "
        f"during (d): {busy[1] / two.seconds:.2f} "
        f"(proxy + stub + h2load; this machine has {cores}; "
        "the rest went to other processes)"
    )
    print(
        f"proxy cores used: (c) {one.proxy_cpu / one.seconds:.2f}, "
        f"(d) {two.proxy_cpu / two.seconds:.2f}; the most these {cores} cores allow with the "
        f"stub and h2load's CPU per call: (c) {cores / busy[0] * one.calls:,.0f}/s, "
        f"(d) {cores / busy[1] * two.calls:,.0f}/s "
        f"(reached {_ratio(two.rate, cores / busy[1] * two.calls)} of it with 2 workers)"
    )


def main() -> None:
    """`python -m bench.throughput [--calls N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls per run")
    args = parser.parse_args()
    asyncio.run(run(calls=args.calls))


if __name__ == "__main__":
    main()
