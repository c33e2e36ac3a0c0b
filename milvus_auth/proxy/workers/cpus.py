"""How many CPUs this process may use: the default of `--workers`.

A container's CPU limit is a CFS quota, not a smaller CPU set: `os.cpu_count()` and the
affinity mask still show every core of the node. The quota (cgroup v2 `cpu.max`, v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`) rounded up is what the container can use; without a
quota, the affinity mask is. The parsers are pure; `available_cpus` reads the files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def quota_v2(cpu_max: str) -> float | None:
    """`cpu.max` ("max 100000" or "200000 100000") as CPUs, None when unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    quota, period = int(fields[0]), int(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def quota_v1(quota_us: str, period_us: str) -> float | None:
    """`cpu.cfs_quota_us` (-1 when unlimited) over `cpu.cfs_period_us` as CPUs."""
    quota, period = int(quota_us), int(period_us)
    return quota / period if quota > 0 and period > 0 else None


def cgroup_paths(proc_self_cgroup: str) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and v1 `cpu` controller path from /proc/self/cgroup."""
    v2 = v1 = None
    for line in proc_self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def cpus_from(affinity: int, quota: float | None) -> int:
    """The CPUs to use: the quota rounded up when there is one, never above the affinity mask,
    at least 1."""
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(quota)))


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use (cgroup quota, else the affinity mask; at least 1)."""
    return cpus_from(len(os.sched_getaffinity(0)), _quota(root))


def _quota(root: Path) -> float | None:
    """The tightest quota on this process's cgroup and its ancestors, None when none is set."""
    try:
        v2, v1 = cgroup_paths(Path("/proc/self/cgroup").read_text())
    except OSError:
        return None
    quotas: list[float] = []
    if v2 is not None:
        for directory in _ancestors(root, v2):
            text = _read(directory / "cpu.max")
            found = quota_v2(text) if text else None
            if found is not None:
                quotas.append(found)
    if v1 is not None:
        for mount in (root / "cpu,cpuacct", root / "cpu"):
            for directory in _ancestors(mount, v1):
                quota, period = (
                    _read(directory / "cpu.cfs_quota_us"),
                    _read(directory / "cpu.cfs_period_us"),
                )
                found = quota_v1(quota, period) if quota and period else None
                if found is not None:
                    quotas.append(found)
    return min(quotas) if quotas else None


def _ancestors(mount: Path, path: str) -> list[Path]:
    """`mount/a/b`, `mount/a`, `mount`: a limit may sit on any level (inside a container's
    cgroup namespace the path is `/`, and only `mount` itself exists)."""
    parts = [part for part in path.split("/") if part]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
