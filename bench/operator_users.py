"""Operator benchmarks (issue 4), each measured against a bound taken in the same run.

    .venv/bin/python -m bench.operator_users [--users 200] [--rotations 20] [--cost 10]

1. Initial reconcile of N users: wall time against N x (one bcrypt hash) / cores.
2. Resume of N unchanged users after a restart: wall time, bcrypt runs and etcd writes (both 0).
3. Rotation propagation through 3 real proxies: Secret change -> every proxy refuses the old
   password, p50 and p95 over the rotations.

1 and 2 drive the operator's reconciler on a real etcd (see `_Secrets` for why not kopf);
3 runs the whole operator against kmock, a real etcd and real proxy processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.operator_env import operator_world, p50_p95
from milvus_auth.core import KeyLayout, hash_password
from milvus_auth.core.grants import RbacLayout
from milvus_auth.operator.config import OperatorConfig
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.operator.status import Applied
from milvus_auth.operator.users.act import UserReconciler
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import ClaimStore, CredentialStore, EtcdSettings, PolicyStore
from tests.harness.proxy import ProxyProcess
from tests.operator.cluster import (
    NAMESPACE,
    Cluster,
    OperatorThread,
    eventually,
)


def _hash_time(cost: int, samples: int = 5) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        hash_password("bench-password-1", cost)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class _Secrets:
    """In-memory Secrets by API path, standing in for the Kubernetes client.

    kmock spends about 0.1 s per request once it holds a few hundred objects (its request
    matching scans every reaction), which would measure kmock, not the operator: the reconcile
    benchmarks call the operator's reconciler directly, with the real etcd and real bcrypt.
    """

    def __init__(self, users: list[str]) -> None:
        self.secrets = {
            f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}-pw": {
                "metadata": {"uid": f"uid-{name}", "resourceVersion": "1"},
                "data": {"password": base64.b64encode(f"{name}-password-1".encode()).decode()},
            }
            for name in users
        }

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.secrets.get(path)


class _NoProxies:
    async def update(self, username: str, digest: str, *, revision: int | None) -> FanOut:
        return FanOut(0, 0)

    async def invalidate(self, username: str) -> FanOut:
        return FanOut(0, 0)

    async def refresh_policy(self) -> FanOut:
        return FanOut(0, 0)


def _reconciler(store: CredentialStore, kube: _Secrets, cost: int) -> UserReconciler:
    return UserReconciler(
        store=store,
        claims=ClaimStore(store.connection, store.layout.meta_root),
        kube=kube,  # type: ignore[arg-type]
        notifier=_NoProxies(),
        metrics=OperatorMetrics(),
        bcrypt_cost=cost,
        permissions=Permissions(),
        policy=PolicyStore(store.connection.settings, RbacLayout(store.layout.meta_root)),
    )


def _spec(name: str) -> UserSpec:
    return UserSpec.from_body(
        {
            "metadata": {"namespace": NAMESPACE, "name": name, "uid": f"uid-{name}"},
            "spec": {"username": name, "passwordSecretRef": {"name": f"{name}-pw"}},
        }
    )


async def bench_reconcile(etcd: EtcdSettings, users: int, cost: int) -> None:
    """Initial reconcile of every user at once, then a resume by a fresh reconciler."""
    cores = os.cpu_count() or 1
    hash_time = _hash_time(cost)
    specs = [_spec(f"bench{index}") for index in range(users)]
    kube = _Secrets([spec.name for spec in specs])
    async with CredentialStore(etcd, KeyLayout(meta_root="bench-reconcile/meta")) as store:
        first = _reconciler(store, kube, cost)
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(first.reconcile(spec, Applied()) for spec in specs))
        wall = time.perf_counter() - started
        assert all(outcome.ready for outcome in outcomes)
        bound = users * hash_time / cores
        print(f"initial reconcile: {users} users, bcrypt cost {cost}")
        print(f"  one hash {hash_time * 1000:.1f} ms, {cores} cores -> bound {bound:.2f} s")
        print(f"  wall {wall:.2f} s; bound/wall = {bound / wall:.2f} (target >= 0.7)")

        revision = await store.revision()
        resumed = _reconciler(store, kube, cost)
        applied = [
            Applied(outcome.password_version, outcome.record_revision, ready=True)
            for outcome in outcomes
        ]
        started = time.perf_counter()
        again = await asyncio.gather(
            *(resumed.reconcile(s, a) for s, a in zip(specs, applied, strict=True))
        )
        wall = time.perf_counter() - started
        assert all(outcome.ready for outcome in again)
        unchanged = await store.revision() == revision
        print(
            f"resume of {users} unchanged users: wall {wall:.2f} s, "
            f"bcrypt runs {resumed.metrics.bcrypt_count()} (must be 0), "
            f"etcd writes {resumed.metrics.etcd_write_count()} (must be 0), "
            f"etcd revision unchanged: {unchanged}"
        )


def _refused_everywhere(proxies: list[ProxyProcess], password: str) -> Callable[[], object]:
    from tests.operator.test_end_to_end import logins  # noqa: PLC0415  (pymilvus is slow to import)

    async def check() -> bool:
        return await logins(proxies, "rotor", password) == [False] * len(proxies)

    return check


async def bench_rotation(
    cluster: Cluster, config: OperatorConfig, proxies: list[ProxyProcess], rotations: int
) -> None:
    """Secret change -> every proxy refuses the old password."""
    operator = OperatorThread(OperatorRuntime(config))
    await operator.start()
    password = "rotor-password-0"
    await cluster.put_secret("rotor-pw", password)
    await cluster.create_user(
        "rotor", {"username": "rotor", "passwordSecretRef": {"name": "rotor-pw"}}
    )
    await eventually(lambda: cluster.reason("rotor") == "Applied", within=60)
    latencies = []
    for index in range(1, rotations + 1):
        old, password = password, f"rotor-password-{index}"
        started = time.perf_counter()
        await cluster.put_secret("rotor-pw", password)
        await eventually(_refused_everywhere(proxies, old), within=30)  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - started)
    await operator.stop()
    print(
        f"rotation propagation over {len(proxies)} proxies, {rotations} rotations: "
        f"{p50_p95(latencies)} (target p95 < 1000 ms)"
    )


async def main(users: int, rotations: int, cost: int) -> None:
    """Run the three benchmarks with one etcd, one kmock, one milvus-lite and 3 proxies."""
    async with operator_world(meta_root="bench/meta", cost=cost) as world:
        await bench_reconcile(world.config.common.etcd, users, cost)
        with_proxies = world.start_proxies(3)
        await bench_rotation(world.cluster, with_proxies, world.proxies, rotations)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--cost", type=int, default=10, help="bcrypt cost (Milvus uses 10)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.users, arguments.rotations, arguments.cost))
