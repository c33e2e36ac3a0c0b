"""The pure parts of `--workers`: the CPU count, each worker's share of the limits, and how the
workers' answers to an internal call become one."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pymilvus.grpc_gen import common_pb2

from milvus_auth.proxy.authn.ratelimit import RateLimitSettings
from milvus_auth.proxy.workers.cpus import (
    available_cpus,
    cgroup_paths,
    cpus_from,
    quota_v1,
    quota_v2,
)
from milvus_auth.proxy.workers.fanout import Failed, merge
from milvus_auth.proxy.workers.supervisor import share_limits

FAILED = common_pb2.Status(
    error_code=common_pb2.ErrorCode.UnexpectedError, code=65535, reason="etcd down"
).SerializeToString()
SUCCESS = common_pb2.Status().SerializeToString()


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("200000 100000", 2.0), ("150000 100000", 1.5), ("", None)],
)
def test_cgroup_v2_quota(text: str, cpus: float | None) -> None:
    assert quota_v2(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"), [("-1", "100000", None), ("50000", "100000", 0.5)]
)
def test_cgroup_v1_quota(quota: str, period: str, cpus: float | None) -> None:
    assert quota_v1(quota, period) == cpus


def test_cgroup_paths_of_both_versions() -> None:
    text = "12:cpu,cpuacct:/kubepods/pod1/c1\n4:memory:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n"
    assert cgroup_paths(text) == ("/kubepods/pod1/c1", "/kubepods/pod1/c1")
    assert cgroup_paths("0::/\n") == ("/", None)


@pytest.mark.parametrize(
    ("affinity", "quota", "cpus"),
    [(8, None, 8), (8, 2.0, 2), (8, 1.5, 2), (8, 0.25, 1), (2, 4.0, 2), (0, None, 1)],
)
def test_the_quota_rounded_up_within_the_affinity_mask(
    affinity: int, quota: float | None, cpus: int
) -> None:
    assert cpus_from(affinity, quota) == cpus


def test_a_quota_file_sets_the_count(tmp_path: Path) -> None:
    # Inside a container's cgroup namespace the process's cgroup is the mount's root.
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    for v1 in ("cpu", "cpu,cpuacct"):
        (tmp_path / v1).mkdir()
        (tmp_path / v1 / "cpu.cfs_quota_us").write_text("50000\n")
        (tmp_path / v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1
    assert available_cpus(tmp_path / "nothing-here") >= 1


def test_each_worker_gets_its_share_of_every_limit() -> None:
    shared = share_limits(RateLimitSettings(), 4)
    assert (shared.user_burst, shared.user_per_second) == (2, 0.25)
    assert (shared.user_total_burst, shared.user_total_per_second) == (25, 2.5)
    assert (shared.peer_burst, shared.peer_per_second) == (7, 0.75)
    assert shared.max_tracked == RateLimitSettings().max_tracked


def test_a_limit_stays_on_or_off() -> None:
    shared = share_limits(RateLimitSettings(user_burst=1, peer_burst=0), 4)
    assert shared.user_burst == 1  # at least one try per worker, never "off"
    assert shared.peer_burst == 0


def test_the_same_answer_from_every_worker_is_the_answer() -> None:
    assert merge([SUCCESS, SUCCESS]).answer == SUCCESS
    assert merge([FAILED, FAILED]).answer == FAILED


def test_a_worker_that_fails_the_call_fails_it_for_all() -> None:
    down = Failed(grpc.StatusCode.UNAVAILABLE, "worker 1 is not running")
    merged = merge([SUCCESS, down])
    assert merged.failed == down
    assert merged.worker == 1
    assert merged.answer is None


def test_a_failed_status_from_one_worker_wins_over_success() -> None:
    merged = merge([SUCCESS, FAILED])
    assert merged.answer == FAILED
    assert merged.worker == 1


def test_different_answers_that_are_not_failures_are_never_success() -> None:
    merged = merge([b"\x0a\x01a", b"\x0a\x01b"])
    assert merged.failed is not None
    assert merged.failed.code == grpc.StatusCode.INTERNAL
