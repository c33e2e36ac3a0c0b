"""The operator benchmarks still run (tiny sizes), so they cannot rot between releases."""

from __future__ import annotations

import pytest

from bench import operator_memory, operator_roles, operator_users


@pytest.mark.slow
async def test_benchmarks_run_with_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await operator_users.main(users=4, rotations=2, cost=4)
    printed = capsys.readouterr().out
    assert "bound/wall" in printed
    assert "bcrypt runs 0 (must be 0), etcd writes 0 (must be 0)" in printed
    assert "etcd revision unchanged: True" in printed
    assert "rotation propagation over 3 proxies, 2 rotations" in printed


@pytest.mark.slow
async def test_role_benchmarks_run_with_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    await operator_roles.main(roles=3, grants=2, users=4, changes=2)
    printed = capsys.readouterr().out
    assert "initial: 3 roles x 2 grants, 4 users bound" in printed
    assert "etcd writes 17 (revision +20, claims included)" in printed  # 3 + 6 grants + 8 binds
    assert "etcd writes 0 (must be 0), refreshes 0 (must be 0)" in printed
    assert "etcd revision unchanged: True" in printed
    assert "spec change -> all 3 proxies enforce, 2 grant changes" in printed


@pytest.mark.slow
async def test_memory_benchmark_runs_with_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    figures = await operator_memory.run(secrets=20, users=2)
    assert set(figures) == {"empty", "secrets", "users"}
    assert all(value > 0 for value in figures.values())
    assert "labelSelector: ['auth.milvus.io/watch=true']" in capsys.readouterr().out
