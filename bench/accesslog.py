"""The access log's cost: proxy throughput with the log on vs off, side by side in one run.

Two real proxy processes in front of one stub upstream: one without the access log, one
writing every call (sample rate 1) to a rotated file. h2load (Debian `nghttp2-client`), a C
HTTP/2 client that is not the bottleneck, sends root's DescribeCollection (a unary call whose
collection the log extracts) to each in turn, several rounds alternating, and the median
rates are compared, and so is the proxy's CPU time per call (steadier than a rate on a
shared machine). Target (issue 15): on/off >= 0.95x.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import shutil
import statistics
import struct
import tempfile
from pathlib import Path

from pymilvus.grpc_gen import milvus_pb2

from bench.common import ROOT, cpu_seconds, etcd_and_proxy, stub_upstream
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess

DESCRIBE = "/milvus.proto.milvus.MilvusService/DescribeCollection"
_RATE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_DONE = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded")


def grpc_body() -> bytes:
    """One gRPC message frame: no compression flag, 4-byte big-endian length, the protobuf."""
    message = milvus_pb2.DescribeCollectionRequest(collection_name="bench").SerializeToString()
    return b"\x00" + struct.pack(">I", len(message)) + message


async def h2load(address: str, body: Path, *, calls: int) -> float:
    """Calls per second h2load reached against the proxy; every call must succeed."""
    authorization = base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
    assert dict(ROOT)["authorization"] == authorization
    process = await asyncio.create_subprocess_exec(
        "h2load",
        "-n",
        str(calls),
        "-c",
        "4",
        "-m",
        "8",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f"authorization: {authorization}",
        "-d",
        str(body),
        f"http://{address}{DESCRIBE}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    rate, done = _RATE.search(output), _DONE.search(output)
    if process.returncode != 0 or rate is None or done is None or int(done.group(1)) != calls:
        raise RuntimeError(f"h2load did not complete {calls} calls:\n{output}")
    return float(rate.group(1))


async def run(*, calls: int = 10_000, rounds: int = 5) -> None:
    """Print the median rate with the access log off and on, and their ratio."""
    if shutil.which("h2load") is None:
        print("h2load not found: apt-get install -y nghttp2-client")
        return
    with tempfile.TemporaryDirectory(prefix="milvus-auth-accesslog-") as directory:
        body = Path(directory) / "body.bin"
        body.write_bytes(grpc_body())
        log = Path(directory) / "access.log"
        async with stub_upstream() as upstream:
            with (
                etcd_and_proxy(upstream) as (_, off),
                etcd_and_proxy(upstream, "--access-log", str(log)) as (_, on),
            ):
                await h2load(off.address, body, calls=calls // 10)  # warm both up
                await h2load(on.address, body, calls=calls // 10)
                rates: dict[str, list[float]] = {"off": [], "on": []}
                cpu: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(rounds):
                    for name, proxy in (("off", off), ("on", on)):
                        rate, per_call = await _measure(proxy, body, calls=calls)
                        rates[name].append(rate)
                        cpu[name].append(per_call)
        lines = _lines(Path(directory))  # after the stop, which writes out the last buffer
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"h2load -n {calls} -c 4 -m 8, {rounds} rounds alternating, DescribeCollection as root")
    print(f"  access log off: {off_rate:,.0f} calls/s (rounds: {_rounded(rates['off'])})")
    print(f"  access log on:  {on_rate:,.0f} calls/s (rounds: {_rounded(rates['on'])})")
    expected = calls // 10 + rounds * calls
    print(f"  lines written by the logging proxy: {lines:,} of {expected:,} calls")
    print(f"  throughput on/off: {on_rate / off_rate:.2f}x (target >= 0.95x)")
    off_cpu, on_cpu = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    print(
        f"  proxy CPU per call: off {off_cpu * 1e6:.0f} us, on {on_cpu * 1e6:.0f} us "
        f"(off/on {off_cpu / on_cpu:.2f}x: the throughput a CPU-bound proxy keeps)"
    )


async def _measure(proxy: ProxyProcess, body: Path, *, calls: int) -> tuple[float, float]:
    """(calls per second, proxy CPU seconds per call) of one h2load run."""
    assert proxy.process is not None
    before = cpu_seconds(proxy.process.pid)
    rate = await h2load(proxy.address, body, calls=calls)
    return rate, (cpu_seconds(proxy.process.pid) - before) / calls


def _lines(directory: Path) -> int:
    """Lines in the access log and its rotated files."""
    return sum(len(path.read_bytes().splitlines()) for path in directory.glob("access.log*"))


def _rounded(values: list[float]) -> str:
    return ", ".join(f"{value:,.0f}" for value in values)


def main() -> None:
    """`python -m bench.accesslog [--calls N] [--rounds R]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(calls=args.calls, rounds=args.rounds))


if __name__ == "__main__":
    main()
