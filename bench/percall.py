"""Proxy CPU per call under a C load generator: the bare grpc.aio forwarder, milvus-auth
forwarding a cached user's call, and milvus-auth refusing a call (no header; rate-limited).
The bare forwarder also runs relaying metadata both ways, as a correct proxy must, which
splits milvus-auth's excess into that relay and its own checks.

h2load (bench/h2load.py) drives the same unary GetVersion at 4 connections x 8 streams
against each server in turn, a few rounds alternating, and each figure is the median over the
rounds of the server's CPU time (from /proc) divided by the calls it answered. CPU time, unlike
throughput, does not depend on what else the machine runs. The proxy logs at its default level
(info), as in production: a refused call's log line is part of its cost. Targets: milvus-auth
forwarding at most 1.05x the bare forwarder's CPU per call; a refusal well under a forwarded
call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.common import GET_VERSION, ROOT, cpu_seconds, etcd_and_proxy, header, stub_upstream
from bench.h2load import grpc_body, h2load
from bench.overhead import BareForwarder

WRONG = header("nobody", "wrong-password")
FORWARDED = "milvus-auth, forwarded"
BARE = "bare forwarder"
RELAY = "bare forwarder + metadata"
_OK = grpc.StatusCode.OK
LIMITED_PROBES = 60  # wrong-password calls that empty the limiter's buckets for this address


@dataclass(frozen=True)
class Target:
    """One server under load and the `authorization` it is sent (none: empty)."""

    label: str
    address: str
    pid: int
    metadata: tuple[tuple[str, str], ...]
    expected: grpc.StatusCode


async def _status(target: Target) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(target.address) as channel:
        try:
            await channel.unary_unary(GET_VERSION)(b"", metadata=target.metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def _cpu_per_call(target: Target, body: Path, requests: int) -> float:
    before = cpu_seconds(target.pid)
    load = await h2load(
        target.address, GET_VERSION, body, requests=requests, headers=target.metadata
    )
    if load.succeeded != requests:
        raise RuntimeError(f"{target.label}: {load.succeeded} of {requests} calls answered")
    return (cpu_seconds(target.pid) - before) / load.succeeded


async def _empty_the_limiter(address: str) -> None:
    """Wrong passwords from this address until the limiter refuses them without bcrypt."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(GET_VERSION)
        for _ in range(LIMITED_PROBES):
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call(b"", metadata=WRONG, timeout=30)


async def measure(
    targets: Sequence[Target], *, requests: int, rounds: int, body: Path
) -> dict[str, list[float]]:
    """CPU seconds per call of each target in each of `rounds` rounds; a round runs every
    target once, back to back, so a ratio within one round compares like with like."""
    for target in targets:
        code = await _status(target)
        if code != target.expected:
            raise RuntimeError(f"{target.label}: answered {code.name}, not {target.expected}")
        await _cpu_per_call(target, body, max(100, requests // 10))  # warm-up
    samples: dict[str, list[float]] = {target.label: [] for target in targets}
    for _ in range(rounds):
        for target in targets:
            samples[target.label].append(await _cpu_per_call(target, body, requests))
    return samples


def paired_ratio(samples: dict[str, list[float]], top: str, bottom: str) -> tuple[float, ...]:
    """`top`/`bottom` per round: (median, lowest, highest)."""
    ratios = [a / b for a, b in zip(samples[top], samples[bottom], strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


async def run(*, requests: int = 20_000, rounds: int = 5) -> dict[str, float]:
    """Print CPU per call of each target and the ratios; return the median CPU seconds by
    label."""
    with tempfile.TemporaryDirectory(prefix="milvus-auth-percall-") as scratch:
        body = Path(scratch) / "get-version.grpc"
        body.write_bytes(grpc_body(b""))
        async with stub_upstream() as upstream:
            bare = BareForwarder(upstream, Path(scratch))
            relay = BareForwarder(upstream, Path(scratch), relay=True)
            bare.start()
            relay.start()
            try:
                with etcd_and_proxy(upstream, "--log-level", "info") as (_, proxy):
                    assert bare.process is not None
                    assert relay.process is not None
                    assert proxy.process is not None
                    await _empty_the_limiter(proxy.address)
                    ours = proxy.process.pid
                    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
                    targets = [
                        Target("grpc.aio server alone", upstream, os.getpid(), ROOT, _OK),
                        Target(BARE, bare.address, bare.process.pid, ROOT, _OK),
                        Target(RELAY, relay.address, relay.process.pid, ROOT, _OK),
                        Target(FORWARDED, proxy.address, ours, ROOT, _OK),
                        Target("milvus-auth, no header", proxy.address, ours, (), unauthenticated),
                        Target(
                            "milvus-auth, rate-limited", proxy.address, ours, WRONG, unauthenticated
                        ),
                    ]
                    samples = await measure(targets, requests=requests, rounds=rounds, body=body)
                    limited = proxy.metric("auth_total", result="failure", reason="rate_limited")
            finally:
                bare.stop()
                relay.stop()
    _report(samples, requests=requests, rounds=rounds, limited=limited)
    return {label: statistics.median(values) for label, values in samples.items()}


def _report(samples: dict[str, list[float]], *, requests: int, rounds: int, limited: float) -> None:
    print(
        f"proxy CPU per unary call, h2load 4 connections x 8 streams, {requests} calls x "
        f"{rounds} rounds (median; ratios: median of the rounds' ratios, lowest-highest)"
    )
    for label, values in samples.items():
        print(f"  {label:<27} {statistics.median(values) * 1e6:6.0f} us")

    def ratio(top: str, bottom: str, digits: int = 3) -> str:
        median, low, high = paired_ratio(samples, top, bottom)
        return f"{median:.{digits}f}x ({low:.{digits}f}-{high:.{digits}f})"

    print(f"  milvus-auth forwarded / bare forwarder: {ratio(FORWARDED, BARE)} (target <= 1.05x)")
    print(
        f"  of which relaying metadata (any correct proxy): {ratio(RELAY, BARE)}"
        f"; milvus-auth's own checks and bookkeeping: {ratio(FORWARDED, RELAY)}"
    )
    for label in ("milvus-auth, no header", "milvus-auth, rate-limited"):
        print(f"  {label.removeprefix('milvus-auth, ')} / forwarded: {ratio(label, FORWARDED, 2)}")
    print(f"  calls refused by the rate limit: {limited:.0f}")


def main() -> None:
    """`python -m bench.percall [--requests N] [--rounds N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="calls per h2load run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per target")
    args = parser.parse_args()
    asyncio.run(run(requests=args.requests, rounds=args.rounds))


if __name__ == "__main__":
    main()
