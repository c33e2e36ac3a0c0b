"""MilvusRole benchmarks (issue 12): initial reconcile and an unchanged resume, on a real etcd.

    .venv/bin/python -m bench.operator_roles [--roles 100] [--grants 10] [--users 200]

1. Initial reconcile of R roles x G grants, then S users bound to them (two roles each): wall
   time and etcd writes (each write is counted, and compared with the etcd revision's growth).
2. Resume of the same, unchanged, by fresh reconcilers (as after an operator restart): etcd
   writes and proxy refreshes (both must be 0) and whether the etcd revision moved.

Both drive the role reconciler and the binding writer directly (no kopf, no proxies: the
refresh fan-out is counted, not sent). The issue's "spec change -> every proxy enforces"
latency needs proxies that enforce RBAC, which this branch's proxy does not yet (the authz
work); it is not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from milvus_auth.core import CredentialRecord, KeyLayout
from milvus_auth.core.grants import RbacLayout
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.act import RoleReconciler
from milvus_auth.operator.roles.bindings import BindingWriter
from milvus_auth.operator.roles.spec import GrantSpec, RoleSpec
from milvus_auth.operator.status import Outcome, Reason
from milvus_auth.store import ClaimStore, CredentialStore, Endpoint, EtcdSettings, PolicyStore
from tests.harness.processes import EtcdServer

META_ROOT = "bench-roles/meta"
HASH = "$2a$04$" + "a" * 53  # bindings need a user record; its password is not the point


class _CountedProxies:
    """Counts policy refreshes instead of sending them."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def update(self, username: str, digest: str, *, revision: int | None) -> FanOut:
        return FanOut(0, 0)

    async def invalidate(self, username: str) -> FanOut:
        return FanOut(0, 0)

    async def refresh_policy(self) -> FanOut:
        self.refreshes += 1
        return FanOut(0, 0)


def _role(index: int, grants: int) -> RoleSpec:
    entries = tuple(GrantSpec(("Search",), "analytics", f"c{g}") for g in range(grants))
    return RoleSpec("team", f"r{index}", f"uid-{index}", 1, f"role_{index}", entries)


async def _pass(
    policy: PolicyStore, roles: list[RoleSpec], users: int, *, ready: bool
) -> tuple[float, OperatorMetrics, _CountedProxies]:
    metrics, proxies = OperatorMetrics(), _CountedProxies()
    reconciler = RoleReconciler(
        policy=policy,
        claims=ClaimStore(policy.connection, META_ROOT, kind="role-claims"),
        notifier=proxies,
        metrics=metrics,
        permissions=Permissions(),
    )
    writer = BindingWriter(policy=policy, notifier=proxies, metrics=metrics)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(reconciler.reconcile(spec, ready=ready, observed=1) for spec in roles)
    )
    assert all(result.outcome.ready for result in results), "a role did not apply"
    applied = Outcome(Reason.APPLIED, "password applied")
    for index in range(users):
        pair = (f"role_{index % len(roles)}", f"role_{(index + 1) % len(roles)}")
        outcome = await writer.apply(f"user_{index}", pair, password=applied, ready=ready)
        assert outcome.ready, outcome.message
    return time.perf_counter() - started, metrics, proxies


async def bench(etcd: EtcdSettings, roles: int, grants: int, users: int) -> None:
    """Print the initial and the resume figures."""
    specs = [_role(index, grants) for index in range(roles)]
    async with (
        PolicyStore(etcd, RbacLayout(META_ROOT)) as policy,
        CredentialStore(etcd, KeyLayout(meta_root=META_ROOT)) as store,
    ):
        for index in range(users):
            await store.create(CredentialRecord(f"user_{index}", HASH))
        before = (await policy.snapshot()).revision
        wall, metrics, proxies = await _pass(policy, specs, users, ready=False)
        after = (await policy.snapshot()).revision
        writes = metrics.etcd_write_count()
        print(
            f"initial: {roles} roles x {grants} grants, {users} users bound: {wall:.2f} s, "
            f"etcd writes {writes} (revision +{after - before}, claims included), "
            f"refreshes {proxies.refreshes}"
        )
        wall, metrics, proxies = await _pass(policy, specs, users, ready=True)
        unchanged = (await policy.snapshot()).revision == after
        print(
            f"resume unchanged: {wall:.2f} s, etcd writes {metrics.etcd_write_count()} "
            f"(must be 0), refreshes {proxies.refreshes} (must be 0), "
            f"etcd revision unchanged: {unchanged}"
        )


async def main(roles: int, grants: int, users: int) -> None:
    """Run both benchmarks on an etcd of their own."""
    etcd = EtcdServer(Path(tempfile.mkdtemp(prefix="bench-roles-")))
    etcd.start()
    try:
        await bench(EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),)), roles, grants, users)
    finally:
        etcd.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=int, default=100)
    parser.add_argument("--grants", type=int, default=10)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.roles, args.grants, args.users))
