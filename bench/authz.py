"""Authorization: the decision's cost, name extraction from a 16 MiB Insert, proxy throughput
with authorization on vs off, and how fast a revoke written to etcd reaches another proxy.

Targets (issue 11): decision median <= 5 us on 1,000 roles / 10,000 grants; extraction
<= 50 us with no copy of the payload; throughput on/off >= 0.95x; revoke p95 < 1 s. The
throughput load is this package's own grpc.aio client (bench/common.py), not h2load.
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from bench.common import META_ROOT, create_users, load, stub_upstream
from milvus_auth.core.grants import GrantTarget, RbacLayout, plan_v1
from milvus_auth.core.privilege_table import METHOD_PRIVILEGES
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.proxy.authn.identity import Identity, Proof
from milvus_auth.proxy.authz.cache import PolicyCache
from milvus_auth.proxy.authz.decision import allowed
from milvus_auth.proxy.authz.objects import ObjectReader
from milvus_auth.store import Endpoint, EtcdSettings, PolicyStore
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyProcess

SEARCH = "/milvus.proto.milvus.MilvusService/Search"
PASSWORD = "Bench-Pass1"


class _Fixed:
    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.value = snapshot

    async def snapshot(self) -> PolicySnapshot:
        return self.value


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _policy_snapshot(roles: int, grants: int) -> PolicySnapshot:
    per_role = max(1, grants // roles)
    stored = tuple(
        StoredGrant(
            GrantTarget(f"role{r}", ObjectType.COLLECTION, "default", f"coll{r}_{g}"),
            "PrivilegeSearch",
            "root",
        )
        for r in range(roles)
        for g in range(per_role)
    )
    return PolicySnapshot(
        revision=1,
        roles=frozenset(f"role{r}" for r in range(roles)),
        bindings=frozenset({("bench", f"role{roles // 2}")}),
        grants=stored,
    )


async def decision(*, roles: int = 1000, grants: int = 10000, checks: int = 20000) -> float:
    """Median seconds per check: read the name from bytes, then decide on the cached policy."""
    cache = PolicyCache(_Fixed(_policy_snapshot(roles, grants)))
    await cache.refresh()
    cache.trust()
    rule = METHOD_PRIVILEGES[SEARCH]
    reader = ObjectReader.for_rule(rule)
    identity = Identity("bench", Proof.PASSWORD)
    name = f"coll{roles // 2}_{max(1, grants // roles) - 1}"
    data = milvus_pb2.SearchRequest(collection_name=name).SerializeToString()
    samples: list[float] = []
    for _ in range(checks):
        started = time.perf_counter()
        policy = cache.ready() or await cache.current()
        ok = allowed(policy, cache.permits, identity, rule, reader.name(data))
        samples.append(time.perf_counter() - started)
        assert ok
    median, p99 = _percentiles(samples)
    print(
        f"decision ({roles} roles, {len(cache.snapshot.grants) if cache.snapshot else 0} "
        f"grants, Search on a collection grant): median {median * 1e6:.2f} us, "
        f"p99 {p99 * 1e6:.2f} us (target: median <= 5 us)"
    )
    return median


def _insert(size: int) -> bytes:
    column = schema_pb2.FieldData(field_name="blob")
    column.scalars.bytes_data.data.append(b"x" * size)
    request = milvus_pb2.InsertRequest(collection_name="books", fields_data=[column])
    return bytes(request.SerializeToString())


def extraction(*, size: int = 16 << 20, runs: int = 200) -> float:
    """Median seconds to read an Insert's collection name; prints bytes allocated."""
    data = _insert(size)
    reader = ObjectReader.for_rule(METHOD_PRIVILEGES["/milvus.proto.milvus.MilvusService/Insert"])
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        reader.name(data)
        samples.append(time.perf_counter() - started)
    tracemalloc.start()
    reader.name(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median, p99 = _percentiles(samples)
    print(
        f"name from a {len(data) / (1 << 20):.1f} MiB Insert: median {median * 1e6:.1f} us, "
        f"p99 {p99 * 1e6:.1f} us, peak allocation {peak} bytes "
        "(target: <= 50 us, no payload copy)"
    )
    return median


async def _seed(etcd: EtcdServer, *, grant: bool) -> PolicyStore:
    settings = EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),))
    store = PolicyStore(settings, RbacLayout(META_ROOT))
    if grant:
        await create_users(etcd, {"bench": PASSWORD}, cost=4)
        await store.create_role("reader")
        await store.bind("bench", "reader")
    return store


def _search_grant() -> tuple[GrantTarget, str]:
    planned = plan_v1(
        "reader", "Search", object_type="Collection", object_name="books",
        database="default", custom_groups=(),
    )  # fmt: skip
    return planned.target, planned.privilege


def _token() -> tuple[tuple[str, str], ...]:
    return (("authorization", base64.b64encode(f"bench:{PASSWORD}".encode()).decode()),)


async def _rate(address: str, *, callers: int, calls: int) -> float:
    request = milvus_pb2.SearchRequest(collection_name="books").SerializeToString()
    async with grpc.aio.insecure_channel(address) as channel:
        search = channel.unary_unary(SEARCH)
        metadata = _token()

        def call() -> object:
            return search(request, metadata=metadata, timeout=30)

        await load(call, callers=callers, calls_per_caller=max(1, calls // 10))
        return (await load(call, callers=callers, calls_per_caller=calls)).rate


@__import__("contextlib").contextmanager
def _proxies(
    workdir: str, upstream: str, etcd: EtcdServer, *extra: list[str]
) -> Iterator[list[ProxyProcess]]:
    from pathlib import Path  # noqa: PLC0415

    started = []
    try:
        for index, args in enumerate(extra):
            proxy = ProxyProcess(
                Path(workdir), etcd_endpoint=etcd.endpoint, meta_root=META_ROOT,
                upstream=upstream, extra_args=["--log-level", "error", *args], name=f"p{index}",
            )  # fmt: skip
            proxy.start()
            started.append(proxy)
        yield started
    finally:
        for proxy in started:
            proxy.stop()


async def throughput_and_revoke(
    *, callers: int = 32, calls: int = 300, rounds: int = 2, revokes: int = 20
) -> None:
    """Authorization on vs off under the same Search load, then revoke propagation A -> B."""
    async with stub_upstream() as upstream:
        with tempfile.TemporaryDirectory(prefix="milvus-auth-bench-") as workdir:
            etcd = EtcdServer(Path(workdir))
            etcd.start()
            try:
                store = await _seed(etcd, grant=True)
                target, privilege = _search_grant()
                await store.grant(target, privilege, "root")
                with _proxies(
                    workdir, upstream, etcd, [], ["--authorization-enabled", "false"], []
                ) as (on, off, other):
                    rates: dict[str, list[float]] = {"on": [], "off": []}
                    for _ in range(rounds):
                        rates["off"].append(await _rate(off.address, callers=callers, calls=calls))
                        rates["on"].append(await _rate(on.address, callers=callers, calls=calls))
                    on_rate, off_rate = max(rates["on"]), max(rates["off"])
                    print(
                        f"throughput, {callers} callers, Search as a granted user: authz on "
                        f"{on_rate:,.0f}/s, off {off_rate:,.0f}/s, ratio {on_rate / off_rate:.3f} "
                        "(target >= 0.95; best of each)"
                    )
                    await _revoke_latency(store, other, target, privilege, revokes)
                await store.close()
            finally:
                etcd.stop()


async def _until(proxy: ProxyProcess, *, refused: bool) -> None:
    """Call until the proxy refuses (or allows) the Search; as fast as calls return."""
    while await _refused(proxy) is not refused:
        pass


async def _refused(proxy: ProxyProcess) -> bool:
    request = milvus_pb2.SearchRequest(collection_name="books").SerializeToString()
    async with grpc.aio.insecure_channel(proxy.address) as channel:
        try:
            await channel.unary_unary(SEARCH)(request, metadata=_token(), timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.PERMISSION_DENIED
    return False


async def _revoke_latency(
    store: PolicyStore, proxy: ProxyProcess, target: GrantTarget, privilege: str, revokes: int
) -> None:
    samples = []
    for _ in range(revokes):
        await store.grant(target, privilege, "root")
        await _until(proxy, refused=False)
        started = time.perf_counter()
        await store.revoke(target, privilege)
        await _until(proxy, refused=True)
        samples.append(time.perf_counter() - started)
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"revoke written to etcd -> another proxy refuses, {len(samples)} revokes: "
        f"p50 {statistics.median(ordered) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
        "(target: p95 < 1 s)"
    )


async def run(
    *,
    roles: int = 1000,
    grants: int = 10000,
    checks: int = 20000,
    insert_bytes: int = 16 << 20,
    callers: int = 32,
    calls: int = 300,
    revokes: int = 20,
) -> None:
    """Every authorization figure, in order."""
    await decision(roles=roles, grants=grants, checks=checks)
    extraction(size=insert_bytes)
    await throughput_and_revoke(callers=callers, calls=calls, revokes=revokes)
