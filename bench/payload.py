"""Large messages: inserts of 1, 16 and 64 MiB and a search answered with 16 MiB, direct and
through the proxy, side by side.

The upstream is a grpc.aio server in a process of its own (bench/sized_upstream.py), the
client sends raw bytes over one channel; direct and proxied calls alternate, so a machine
shared with other work slows both alike, and the figure is each side's median. The proxy runs
with authentication and authorization on (root, cached): the privilege check reads the
collection name out of each request, and nothing decodes the rest. Targets: proxied speed at
least 0.8x direct at 16 MiB, and the ratio at 64 MiB no worse than at 16 MiB. The proxy's CPU
time per call is printed too: the wall-clock ratio also depends on what the client and
upstream cost, the CPU time only on the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from bench.common import ROOT, cpu_seconds, etcd_and_proxy
from bench.sized_upstream import RESPONSE_BYTES
from tests.harness.processes import ServerProcess, free_port, port_open

MIB = 1024 * 1024
INSERT = "/milvus.proto.milvus.MilvusService/Insert"
SEARCH = "/milvus.proto.milvus.MilvusService/Search"
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def insert_request(payload: bytes) -> bytes:
    """An InsertRequest whose bulk is `payload` as one binary-vector column."""
    vectors = schema_pb2.VectorField(dim=8, binary_vector=payload)
    field = schema_pb2.FieldData(
        type=schema_pb2.DataType.BinaryVector, field_name="v", vectors=vectors
    )
    request = milvus_pb2.InsertRequest(collection_name="big", fields_data=[field], num_rows=1)
    return request.SerializeToString()


def search_request(payload: bytes) -> bytes:
    """A SearchRequest whose bulk is `payload` as its placeholder group (the query vectors)."""
    request = milvus_pb2.SearchRequest(collection_name="big", placeholder_group=payload)
    return request.SerializeToString()


def sized(build: Callable[[bytes], bytes], size: int) -> bytes:
    """A request of exactly `size` bytes whose bulk is random (so any change shows)."""
    overhead = len(build(b"\x00" * size)) - size
    message = build(os.urandom(size - overhead))
    if len(message) != size:
        raise ValueError(f"cannot build a {size}-byte request")
    return message


class SizedUpstream(ServerProcess):
    """bench/sized_upstream.py as a child process on a free port."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        super().__init__(
            "sized-upstream",
            [sys.executable, "-m", "bench.sized_upstream", str(port)],
            log_path=workdir / "sized-upstream.log",
            ready=lambda: port_open(port),
        )


@dataclass(frozen=True)
class Case:
    """One kind of call: its method, request and response sizes, and how often to time it."""

    label: str
    method: str
    request: bytes
    response_bytes: int
    repeats: int


@dataclass(frozen=True)
class Timing:
    """Median seconds per call direct and proxied, and the proxy's CPU seconds per call."""

    direct: float
    proxied: float
    proxy_cpu: float

    @property
    def ratio(self) -> float:
        """Proxied speed as a fraction of direct speed."""
        return self.direct / self.proxied


async def _time(case: Case, direct: str, proxied: str, proxy_pid: int) -> Timing:
    metadata = (*ROOT, (RESPONSE_BYTES, str(case.response_bytes)))
    async with (
        grpc.aio.insecure_channel(direct, options=UNLIMITED) as direct_channel,
        grpc.aio.insecure_channel(proxied, options=UNLIMITED) as proxied_channel,
    ):
        calls = [channel.unary_unary(case.method) for channel in (direct_channel, proxied_channel)]

        async def once(index: int) -> float:
            started = time.perf_counter()
            response = await calls[index](case.request, metadata=metadata, timeout=120)
            took = time.perf_counter() - started
            if len(response) != case.response_bytes:
                raise AssertionError(f"{case.label}: {len(response)} bytes came back")
            return took

        for index in (0, 1, 0, 1):  # warm both paths (channels, caches, the allocators)
            await once(index)
        direct_times: list[float] = []
        proxied_times: list[float] = []
        cpu = 0.0
        for _ in range(case.repeats):
            direct_times.append(await once(0))
            before = cpu_seconds(proxy_pid)
            proxied_times.append(await once(1))
            cpu += cpu_seconds(proxy_pid) - before
    return Timing(
        statistics.median(direct_times), statistics.median(proxied_times), cpu / case.repeats
    )


def cases(sizes_mib: tuple[int, ...], search_mib: int, repeats: int) -> list[Case]:
    """Inserts of each size, then a small search answered with `search_mib` MiB."""
    found = [
        Case(
            f"insert {size:>2} MiB",
            INSERT,
            sized(insert_request, size * MIB),
            0,
            _repeats(size, repeats),
        )
        for size in sizes_mib
    ]
    found.append(
        Case(
            f"search -> {search_mib} MiB",
            SEARCH,
            search_request(b"\x00" * 64),
            search_mib * MIB,
            _repeats(search_mib, repeats),
        )
    )
    return found


async def run(
    *, sizes_mib: tuple[int, ...] = (1, 16, 64), search_mib: int = 16, repeats: int = 48
) -> dict[str, float]:
    """Print each case's direct and proxied medians, their ratio and the proxy's CPU per call;
    return the ratios by label."""
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="milvus-auth-payload-") as scratch:
        upstream = SizedUpstream(Path(scratch))
        upstream.start()
        try:
            with etcd_and_proxy(upstream.address) as (_, proxy):
                assert proxy.process is not None
                print("proxied/direct speed per call (medians, calls alternating), auth on")
                for case in cases(sizes_mib, search_mib, repeats):
                    timing = await _time(case, upstream.address, proxy.address, proxy.process.pid)
                    ratios[case.label] = timing.ratio
                    print(
                        f"  {case.label}: direct {timing.direct * 1e3:7.1f} ms, "
                        f"proxied {timing.proxied * 1e3:7.1f} ms, ratio {timing.ratio:.2f}x, "
                        f"proxy CPU {timing.proxy_cpu * 1e3:6.1f} ms/call "
                        f"({timing.proxy_cpu * 1e3 / _mib(case):.2f} ms/MiB)"
                    )
        finally:
            upstream.stop()
    print("targets: >= 0.80x at 16 MiB; the 64 MiB ratio no worse than the 16 MiB one")
    return ratios


def _repeats(size_mib: int, repeats: int) -> int:
    """`repeats` for 1 MiB, a quarter up to 16 MiB, an eighth above; at least 3."""
    share = 1 if size_mib <= 1 else 4 if size_mib <= 16 else 8
    return max(3, repeats // share)


def _mib(case: Case) -> float:
    return max(len(case.request), case.response_bytes) / MIB


def main() -> None:
    """`python -m bench.payload [--repeats N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=48, help="1 MiB calls (fewer when larger)")
    args = parser.parse_args()
    asyncio.run(run(repeats=args.repeats))


if __name__ == "__main__":
    main()
