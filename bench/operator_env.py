"""The operator benchmarks' world: a real etcd, kmock as the API, milvus-lite, real proxies.

The whole operator runs against it in a thread (`tests.operator.cluster.OperatorThread`), as in
the operator tests; proxies are started on demand and published as the proxy Service's
EndpointSlices, so the operator's own fan-out finds them.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import kmock

from milvus_auth.config import CommonSettings
from milvus_auth.core import KeyLayout
from milvus_auth.operator.config import OperatorConfig, ServiceRef
from milvus_auth.store import Endpoint, EtcdSettings
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyProcess
from tests.operator.cluster import (
    NAMESPACE,
    Cluster,
    Emulator,
    declare_resources,
    write_kubeconfig,
)

SERVICE = "milvus-proxy-internal"


def p50_p95(latencies: list[float]) -> str:
    """`p50 X ms, p95 Y ms` of propagation latencies in seconds."""
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


@dataclass
class OperatorWorld:
    """One etcd, one kmock, one milvus-lite, and the proxies started so far."""

    workdir: Path
    etcd: EtcdServer
    milvus: MilvusLite
    cluster: Cluster
    config: OperatorConfig
    """The operator's configuration, without proxies until `start_proxies`."""
    proxies: list[ProxyProcess] = field(default_factory=list)

    def start_proxies(self, count: int) -> OperatorConfig:
        """Start `count` proxies, publish them, and return the config that notifies them."""
        meta_root = self.config.common.layout.meta_root
        for index in range(count):
            proxy = ProxyProcess(
                self.workdir,
                etcd_endpoint=self.etcd.endpoint,
                meta_root=meta_root,
                upstream=self.milvus.endpoint,
                name=f"proxy{len(self.proxies) + index}",
            )
            proxy.start()
            self.proxies.append(proxy)
        self.cluster.set_proxies(SERVICE, [("127.0.0.1", p.internal_port) for p in self.proxies])
        return replace(self.config, proxy_service=ServiceRef(NAMESPACE, SERVICE))


@contextlib.asynccontextmanager
async def operator_world(*, meta_root: str, cost: int) -> AsyncIterator[OperatorWorld]:
    """Start everything but the proxies; stop everything after."""
    # pymilvus logs every refused call (the point of the propagation benchmarks) at ERROR.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    etcd = EtcdServer(workdir)
    etcd.start()
    milvus = MilvusLite(workdir / "milvus")
    world: OperatorWorld | None = None
    try:
        milvus.start()
        async with Emulator() as api, kmock.Server(api):
            declare_resources(api)
            config = OperatorConfig(
                common=CommonSettings(
                    etcd=EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),)),
                    layout=KeyLayout(meta_root=meta_root),
                    bcrypt_cost=cost,
                ),
                namespaces=(NAMESPACE,),
                kubeconfig=str(write_kubeconfig(workdir / "kubeconfig", str(api.url))),
            )
            world = OperatorWorld(workdir, etcd, milvus, Cluster(api), config)
            yield world
    finally:
        for proxy in world.proxies if world else []:
            proxy.stop()
        milvus.stop()
        etcd.stop()
