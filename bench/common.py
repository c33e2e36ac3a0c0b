"""What the benchmarks share: a real etcd and proxy process, a stub upstream, load and stats.

The proxy runs as the real `milvus-auth proxy` process (tests/harness); the stub upstream runs
in the benchmark's own event loop and answers every call at once with an empty message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from milvus_auth.core import CredentialRecord, KeyLayout, hash_password
from milvus_auth.store import CredentialStore, Endpoint, EtcdSettings
from tests.harness.processes import EtcdServer, children
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess

GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
META_ROOT = "bench/meta"


def header(user: str, password: str) -> tuple[tuple[str, str], ...]:
    """The metadata pymilvus sends for these credentials."""
    return (("authorization", base64.b64encode(f"{user}:{password}".encode()).decode()),)


ROOT = header("root", ROOT_PASSWORD)


@dataclass
class Stats:
    """Latencies of a batch of calls, in seconds, and the batch's wall time."""

    latencies: Sequence[float]
    elapsed: float
    cpu_per_call: float = 0.0
    """CPU seconds the measured server process spent per call, when measured."""
    ends: Sequence[float] = ()
    """When each call finished (perf_counter), in the order of `latencies`."""

    def until(self, moment: float) -> Stats:
        """Only the calls that finished by `moment`."""
        kept = [lat for lat, end in zip(self.latencies, self.ends, strict=True) if end <= moment]
        return Stats(kept, self.elapsed)

    @property
    def rate(self) -> float:
        """Calls per second."""
        return len(self.latencies) / self.elapsed

    def median(self) -> float:
        """Median latency, seconds."""
        return statistics.median(self.latencies)

    def p99(self) -> float:
        """99th percentile latency, seconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def line(self, label: str) -> str:
        """One printable summary."""
        if not self.latencies:
            return f"{label}: no calls"
        return (
            f"{label}: {len(self.latencies)} calls, {self.rate:,.0f}/s, "
            f"median {self.median() * 1e3:.3f} ms, p99 {self.p99() * 1e3:.3f} ms"
        )


async def load(
    call: Callable[[], Awaitable[object]], *, callers: int, calls_per_caller: int
) -> Stats:
    """`callers` concurrent loops, each making `calls_per_caller` calls back to back."""
    latencies: list[float] = []
    ends: list[float] = []

    async def caller() -> None:
        for _ in range(calls_per_caller):
            started = time.perf_counter()
            await call()
            ended = time.perf_counter()
            latencies.append(ended - started)
            ends.append(ended)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Stats(latencies, time.perf_counter() - started, ends=ends)


class Stub(grpc.GenericRpcHandler):
    """Answers any unary call at once with an empty message; `calls` counts them."""

    def __init__(self) -> None:
        self.calls = 0

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        async def answer(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            self.calls += 1
            return b""

        return grpc.unary_unary_rpc_method_handler(answer)


@contextlib.asynccontextmanager
async def stub_server() -> AsyncIterator[tuple[str, Stub]]:
    """A gRPC server in this loop answering any unary call at once; yields host:port, stub."""
    stub = Stub()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((stub,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", stub
    finally:
        await server.stop(None)


@contextlib.asynccontextmanager
async def stub_upstream() -> AsyncIterator[str]:
    """`stub_server`'s address alone."""
    async with stub_server() as (address, _):
        yield address


@contextlib.contextmanager
def etcd_and_proxy(
    upstream: str, *extra_args: str, profile: Path | None = None, workers: int = 1
) -> Any:
    """A throwaway etcd and one proxy (auth on, root bootstrapped) in front of `upstream`,
    with `workers` worker processes.

    With `profile`, the proxy runs under cProfile and writes its statistics there on exit.
    """
    with tempfile.TemporaryDirectory(prefix="milvus-auth-bench-") as directory:
        workdir = Path(directory)
        etcd = EtcdServer(workdir)
        etcd.start()
        proxy = ProxyProcess(
            workdir,
            etcd_endpoint=etcd.endpoint,
            meta_root=META_ROOT,
            upstream=upstream,
            extra_args=["--log-level", "error", *extra_args],
            workers=workers,
        )
        if profile is not None:
            profiler = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                str(profile),
                "-m",
                "milvus_auth.cli",
            ]
            proxy.argv[:1] = profiler
        try:
            proxy.start()
            yield etcd, proxy
        finally:
            proxy.stop()
            etcd.stop()


async def create_users(etcd: EtcdServer, passwords: dict[str, str], *, cost: int) -> None:
    """Write credential records straight to etcd (bcrypt at `cost`, as Milvus stores them)."""
    settings = EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),))
    async with CredentialStore(settings, KeyLayout(meta_root=META_ROOT)) as store:
        for user, password in passwords.items():
            hashed = await asyncio.to_thread(hash_password, password, cost)
            await store.create(CredentialRecord(user, hashed))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (a proxy's supervisor and workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def unary(channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> Callable[[], Any]:
    """A zero-argument GetVersion call with fixed metadata."""
    multicallable = channel.unary_unary(GET_VERSION)

    def call() -> Any:
        return multicallable(b"", metadata=metadata, timeout=30)

    return call


async def users_load(
    channel: grpc.aio.Channel, users: Sequence[str], password: str, calls: int
) -> Stats:
    """Each user calling back to back with `password`, all users together."""
    results = await asyncio.gather(
        *(
            load(unary(channel, header(user, password)), callers=1, calls_per_caller=calls)
            for user in users
        )
    )
    return Stats(
        [latency for stats in results for latency in stats.latencies],
        max(stats.elapsed for stats in results),
        ends=[end for stats in results for end in stats.ends],
    )
