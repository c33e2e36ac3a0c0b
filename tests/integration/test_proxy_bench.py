"""Every benchmark, run with tiny sizes, so that none of them can rot unnoticed."""

from __future__ import annotations

import pytest

from bench import (
    apikeys,
    auth_cache,
    authz,
    cold_start,
    enumeration,
    flood,
    memory,
    overhead,
    payload,
    percall,
    throughput,
)


async def test_auth_cache_bench(capsys: pytest.CaptureFixture[str]) -> None:
    median = await auth_cache.run(checks=200, cost=4)
    assert median > 0
    assert "cached auth decision" in capsys.readouterr().out


async def test_overhead_bench(capsys: pytest.CaptureFixture[str]) -> None:
    await overhead.run(calls=5, callers=2)
    out = capsys.readouterr().out
    assert "throughput ratio proxied/direct" in out
    assert "CPU per call" in out


async def test_cold_start_bench(capsys: pytest.CaptureFixture[str]) -> None:
    await cold_start.run(first_calls=20, warm_calls=5, cost=4)
    assert "bcrypt runs: 1 (target: exactly 1)" in capsys.readouterr().out


async def test_flood_bench(capsys: pytest.CaptureFixture[str]) -> None:
    await flood.run(rate=100, seconds=0.5, good_calls=5, cost=4)
    out = capsys.readouterr().out
    assert "bcrypt runs:" in out
    assert "-- 1 worker(s)" in out
    assert "-- 2 worker(s)" in out
    assert "attacker's: worker" in out  # which worker each connection reached, from /proc
    assert "'OK'" not in out  # no wrong password was ever accepted


async def test_throughput_bench(capsys: pytest.CaptureFixture[str]) -> None:
    # Each run checks that the stub answered every call h2load made.
    await throughput.run(calls=300)
    out = capsys.readouterr().out
    assert "(d) milvus-auth 2 workers" in out
    assert "rate: (c)/(b)" in out
    assert "proxy CPU per call: (c)/(b)" in out


async def test_enumeration_bench(capsys: pytest.CaptureFixture[str]) -> None:
    worst = await enumeration.run(samples=3, cost=4)
    assert worst >= 1.0
    out = capsys.readouterr().out
    assert "unknown user" in out
    assert "bcrypt runs: 10 for 10 logins" in out  # one login, then every refusal ran one


async def test_authz_bench(capsys: pytest.CaptureFixture[str]) -> None:
    await authz.run(
        roles=10, grants=100, checks=100, insert_bytes=1 << 20, callers=2, calls=10, revokes=3
    )
    out = capsys.readouterr().out
    assert "decision (10 roles, 100 grants" in out
    assert "peak allocation" in out
    assert "throughput, 2 callers" in out
    assert "3 revokes: p50" in out


async def test_apikeys_bench(capsys: pytest.CaptureFixture[str]) -> None:
    await apikeys.run(checks=200, cost=4, keys=20, revocations=2)
    out = capsys.readouterr().out
    assert "cached API key check" in out
    assert "bcrypt runs while timing: 0" in out
    assert "etcd reads: 20 key records (1.00 per key" in out
    assert "bcrypt runs: 0 (target 0)" in out
    assert "2 revocations: p50" in out


async def test_payload_bench(capsys: pytest.CaptureFixture[str]) -> None:
    ratios = await payload.run(sizes_mib=(1,), search_mib=1, repeats=3)
    assert set(ratios) == {"insert  1 MiB", "search -> 1 MiB"}
    assert all(ratio > 0 for ratio in ratios.values())
    assert "proxy CPU" in capsys.readouterr().out


async def test_percall_bench(capsys: pytest.CaptureFixture[str]) -> None:
    cpu = await percall.run(requests=300, rounds=1)
    assert all(seconds > 0 for seconds in cpu.values())
    out = capsys.readouterr().out
    assert "milvus-auth forwarded / bare forwarder" in out
    assert "of which relaying metadata" in out
    assert "rate-limited / forwarded" in out


async def test_memory_bench(capsys: pytest.CaptureFixture[str]) -> None:
    figures = await memory.run(users=50, roles=2, collections=3, api_keys=20)
    assert set(figures) == {"idle", "users", "grants", "api_keys"}
    assert all(value > 0 for value in figures.values())
    out = capsys.readouterr().out
    assert "users and API keys over idle" in out
    assert "+ 20 cached API keys" in out
