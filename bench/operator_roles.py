"""MilvusRole benchmarks (issue 12): initial reconcile, an unchanged resume, and propagation.

    .venv/bin/python -m bench.operator_roles [--roles 100] [--grants 10] [--users 200]
        [--changes 20]

1. Initial reconcile of R roles x G grants, then S users bound to them (two roles each): wall
   time and etcd writes (each write is counted, and compared with the etcd revision's growth).
2. Resume of the same, unchanged, by fresh reconcilers (as after an operator restart): etcd
   writes and proxy refreshes (both must be 0) and whether the etcd revision moved.

3. Spec change -> all 3 proxies enforce: a MilvusRole's grants alternately lose and regain
   Search; the time from the spec patch until every proxy refuses (or allows) a Search by the
   bound user, p50 and p95 over the changes (target p95 < 1 s).

1 and 2 drive the role reconciler and the mapping writer directly (no kopf, no proxies: the
refresh fan-out is counted, not sent); 3 runs the whole operator against kmock, a real etcd,
milvus-lite and 3 real proxy processes (`bench.operator_env`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2

from bench.common import header
from bench.operator_env import OperatorWorld, operator_world, p50_p95
from milvus_auth.core import CredentialRecord, KeyLayout
from milvus_auth.core.grants import RbacLayout
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.act import RoleReconciler
from milvus_auth.operator.roles.bindings import BindingWriter
from milvus_auth.operator.roles.decide import plan_bindings
from milvus_auth.operator.roles.spec import GrantSpec, RoleSpec
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.store import ClaimStore, CredentialStore, Endpoint, EtcdSettings, PolicyStore
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyProcess
from tests.operator.cluster import OperatorThread, eventually

META_ROOT = "bench-roles/meta"
SEARCH = "/milvus.proto.milvus.MilvusService/Search"
READER_PASSWORD = "Reader-password-1"
READER = header("reader", READER_PASSWORD)
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
    writer = BindingWriter(policy=policy, metrics=metrics)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(reconciler.reconcile(spec, ready=ready, observed=1) for spec in roles)
    )
    assert all(result.outcome.ready for result in results), "a role did not apply"
    for index in range(users):
        # What the MilvusUser reconciler does for spec.roles: one snapshot, plan, write, and a
        # refresh after a write or until the proxies confirmed (`ready`).
        user, pair = (
            f"user_{index}",
            (f"role_{index % len(roles)}", f"role_{(index + 1) % len(roles)}"),
        )
        plan = plan_bindings(user, pair, await policy.snapshot())
        missing, wrote = await writer.write(user, plan)
        assert not missing, missing
        if wrote or not ready:
            await proxies.refresh_policy()
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


async def _searches(proxies: list[ProxyProcess]) -> list[grpc.StatusCode]:
    """One Search by the bound user on every proxy at once; the gRPC code of each."""
    request = milvus_pb2.SearchRequest(collection_name="books").SerializeToString()

    async def search(proxy: ProxyProcess) -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(proxy.address) as channel:
            try:
                await channel.unary_unary(SEARCH)(request, metadata=READER, timeout=10)
            except grpc.aio.AioRpcError as error:
                return error.code()
        return grpc.StatusCode.OK  # allowed (milvus-lite answers whatever it answers)

    return list(await asyncio.gather(*(search(proxy) for proxy in proxies)))


async def _enforced(proxies: list[ProxyProcess], *, allowed: bool) -> None:
    """Search on every proxy, as fast as the calls return, until all allow (or all refuse)."""
    while True:
        codes = await _searches(proxies)
        if all((code != grpc.StatusCode.PERMISSION_DENIED) is allowed for code in codes):
            return


async def bench_propagation(world: OperatorWorld, changes: int) -> None:
    """Spec change -> every proxy enforces it, over `changes` alternating revokes and grants."""
    config = world.start_proxies(3)
    cluster, proxies = world.cluster, world.proxies
    operator = OperatorThread(OperatorRuntime(config))
    await operator.start()
    both = {"privileges": ["Search", "Query"], "collection": "books"}
    query_only = {**both, "privileges": ["Query"]}
    await cluster.create_role("reader", {"roleName": "bench_reader", "grants": [both]})
    await cluster.put_secret("reader-pw", READER_PASSWORD)
    user = {"username": "reader", "passwordSecretRef": {"name": "reader-pw"}}
    await cluster.create_user("reader", {**user, "roles": ["bench_reader"]})
    await eventually(lambda: cluster.reason("reader") == "Applied", within=60)
    await _enforced(proxies, allowed=True)
    latencies = []
    for change in range(1, changes + 1):
        allowed = change % 2 == 0  # odd changes revoke Search, even ones grant it again
        spec = {"grants": [both if allowed else query_only]}
        started = time.perf_counter()
        await cluster.patch_role("reader", {"metadata": {"generation": change + 1}, "spec": spec})
        await asyncio.wait_for(_enforced(proxies, allowed=allowed), timeout=30)
        latencies.append(time.perf_counter() - started)
    await operator.stop()
    print(
        f"spec change -> all {len(proxies)} proxies enforce, {changes} grant changes "
        f"(revoke and grant alternately): {p50_p95(latencies)} (target p95 < 1000 ms)"
    )


async def main(roles: int, grants: int, users: int, changes: int = 20) -> None:
    """Run the reconcile benchmarks on an etcd of their own, then the propagation one."""
    etcd = EtcdServer(Path(tempfile.mkdtemp(prefix="bench-roles-")))
    etcd.start()
    try:
        await bench(EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),)), roles, grants, users)
    finally:
        etcd.stop()
    async with operator_world(meta_root="bench-roles/propagation", cost=4) as world:
        await bench_propagation(world, changes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roles", type=int, default=100)
    parser.add_argument("--grants", type=int, default=10)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.roles, args.grants, args.users, args.changes))
