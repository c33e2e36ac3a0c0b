"""A wrong-password flood against a real proxy process: log lines bounded, metrics exact."""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time

import grpc

from tests.harness.processes import EtcdServer, wait_until
from tests.harness.proxy import ProxyFactory, ProxyProcess

GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
BURST = 3
INTERVAL = 1.0
LINE = re.compile(r"auth failure user=(\S+) peer=\S+ method=\S+ reason=\w+")
SUMMARY = re.compile(r"suppressed (\d+) failed logins for user (\S+) from peer (\S+) in the last")


def wrong(user: str) -> tuple[tuple[str, str], ...]:
    token = base64.b64encode(f"{user}:Wrong-Pass-1".encode()).decode()
    return (("authorization", token),)


async def flood(address: str, calls: int, metadata: tuple[tuple[str, str], ...]) -> int:
    """`calls` refused calls, 20 at a time; how many ended UNAUTHENTICATED."""
    refused = 0
    async with grpc.aio.insecure_channel(address) as channel:
        method = channel.unary_unary(GET_VERSION)
        for start in range(0, calls, 20):
            batch = [method(b"", metadata=metadata, timeout=10) for _ in range(start, start + 20)]
            for outcome in await asyncio.gather(*batch, return_exceptions=True):
                assert isinstance(outcome, grpc.aio.AioRpcError)
                refused += outcome.code() is grpc.StatusCode.UNAUTHENTICATED
    return refused


def accounted(proxy: ProxyProcess) -> tuple[int, int, int]:
    """(failure lines, failures in summary lines, summary lines) in the proxy's log so far."""
    text = proxy.log()
    lines = LINE.findall(text)
    summaries = SUMMARY.findall(text)
    return len(lines), sum(int(count) for count, _, _ in summaries), len(summaries)


def test_a_flood_writes_a_bounded_number_of_lines_and_counts_every_failure(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream="127.0.0.1:1",  # never reached: every call is refused at the edge
        extra_args=[
            "--failed-login-log-burst",
            str(BURST),
            "--failed-login-log-interval",
            str(INTERVAL),
        ],
    )
    started = time.monotonic()
    refused = asyncio.run(
        _all(
            flood(proxy.address, 300, wrong("alice")),
            flood(proxy.address, 200, wrong("bob")),
            flood(proxy.address, 100, ()),  # no authorization header: user=None
        )
    )
    took = time.monotonic() - started
    assert refused == 600
    # Metrics count every failure, whatever the log shows.
    assert proxy.metric("auth_total", result="failure") == 600
    # All from one client address: at most BURST lines per window for that address.
    windows = math.ceil(took / INTERVAL) + 1
    lines, _, _ = accounted(proxy)
    assert 0 < lines <= BURST * windows, (lines, windows)
    # Once the last window is over, the summaries account for every other failure.
    wait_until(lambda: sum(accounted(proxy)[:2]) == 600, timeout=15, what="the summaries")
    lines, suppressed, summaries = accounted(proxy)
    assert lines + suppressed == 600
    # One summary per (user, address) per window at most: three users from one address.
    assert summaries <= 3 * (windows + 2)
    text = proxy.log()
    assert "Wrong-Pass-1" not in text
    assert {user for _, user, _ in SUMMARY.findall(text)} <= {"'alice'", "'bob'", "None"}


async def _all(*floods: object) -> int:
    results = await asyncio.gather(*floods)  # type: ignore[call-overload]
    return sum(results)
