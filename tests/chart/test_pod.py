"""The Pods the chart renders, run as real processes: what a cluster would start.

No cluster or image exists here, so the kubelet's part is played by the test: the rendered
Secrets are written where the Pod mounts them (under a temporary root instead of /), the
container gets exactly the rendered environment, and the probes are made as the kubelet makes
them. Only addresses change: loopback ports, the test's etcd and milvus-lite, and kmock as the
Kubernetes API for the operator.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import kmock
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import CredentialStore
from tests.chart.conftest import Release, Render, containers, env_of, needs_helm
from tests.harness.milvus import MilvusLite, milvus, milvus_server
from tests.harness.processes import EtcdServer, ServerProcess, children, free_port, port_open
from tests.harness.proxy import milvus_auth_binary
from tests.harness.workers import channels_on_every_worker
from tests.operator.cluster import (
    NAMESPACE,
    Cluster,
    Emulator,
    declare_resources,
    eventually,
    write_kubeconfig,
)

__all__ = ["milvus", "milvus_server"]

pytestmark = needs_helm

MOUNT_ROOT = "/etc/milvus-auth/"
# One watched namespace (the operator tests' kmock helpers create objects there).
NAMESPACED = {"operator": {"scope": "namespaced", "watchNamespaces": [NAMESPACE]}}


@dataclass(frozen=True)
class Pod:
    """One container as the kubelet would start it: its process and its environment."""

    process: ServerProcess
    env: dict[str, str]

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def file(self, variable: str) -> str:
        return Path(self.env[variable]).read_text(encoding="utf-8")


def mount_secrets(release: Release, deployment: dict[str, Any], root: Path) -> None:
    """Write each mounted Secret's keys as files, as the kubelet does, under `root`."""
    secrets = {obj["metadata"]["name"]: obj for obj in release.find("Secret")}
    volumes = {
        volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]
    }
    (container,) = containers(deployment)
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            directory = root / mount["mountPath"].lstrip("/")
            directory.mkdir(parents=True, exist_ok=True)
            for key, value in secrets[volume["secret"]["secretName"]]["data"].items():
                (directory / key).write_bytes(base64.b64decode(value))


def pod(
    release: Release, suffix: str, workdir: Path, overrides: dict[str, str], ports: list[int]
) -> Pod:
    """The Deployment's container with its rendered env (paths under `workdir`), not started."""
    deployment = release.one("Deployment", suffix)
    (container,) = containers(deployment)
    root = workdir / "pod"
    mount_secrets(release, deployment, root)
    env = {
        name: str(root / value.lstrip("/")) if value.startswith(MOUNT_ROOT) else value
        for name, value in env_of(container).items()
    }
    env |= overrides | {"MILVUS_AUTH_BCRYPT_COST": "4"}  # cost 4 only to keep tests fast
    process = ServerProcess(
        f"pod{suffix}",
        [milvus_auth_binary(), *container["args"]],
        log_path=workdir / f"{suffix.strip('-')}.log",
        ready=lambda: all(port_open(port) for port in ports),
        env=env,
    )
    return Pod(process, env)


def proxy_pod(
    release: Release, workdir: Path, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> Pod:
    """The release's proxy container with loopback ports, the test's etcd and milvus-lite."""
    public, internal, metrics = free_port(), free_port(), free_port()
    overrides = {
        "MILVUS_AUTH_HOST": "127.0.0.1",
        "MILVUS_AUTH_PORT": str(public),
        "MILVUS_AUTH_INTERNAL_PORT": str(internal),
        "MILVUS_AUTH_METRICS_PORT": str(metrics),
        "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
        "MILVUS_AUTH_META_ROOT": meta_root,
        "MILVUS_AUTH_UPSTREAM": milvus.endpoint,
    }
    return pod(release, "-proxy", workdir / "proxy", overrides, [public, internal])


@asynccontextmanager
async def operator_pod(
    release: Release, workdir: Path, etcd: EtcdServer, meta_root: str
) -> AsyncIterator[tuple[Pod, Cluster]]:
    """The operator container running against kmock (its kubeconfig flag replaces the
    in-cluster service account); yields it with kmock's object helpers."""
    health, metrics = free_port(), free_port()
    async with Emulator() as api, kmock.Server(api):
        declare_resources(api)
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(api.url))
        overrides = {
            "MILVUS_AUTH_LIVENESS": f"http://127.0.0.1:{health}/healthz",
            "MILVUS_AUTH_METRICS_PORT": str(metrics),
            "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
            "MILVUS_AUTH_META_ROOT": meta_root,
            "MILVUS_AUTH_KUBECONFIG": str(kubeconfig),
        }
        operator = pod(release, "-operator", workdir, overrides, [health])
        await asyncio.to_thread(operator.process.start)
        try:
            yield operator, Cluster(api)
        finally:
            await asyncio.to_thread(operator.process.stop)


@pytest.fixture
def proxy(
    render: Render, tmp_path: Path, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> Iterator[Pod]:
    """The default chart's proxy container, running."""
    running = proxy_pod(render({})[0], tmp_path, etcd, meta_root, milvus)
    running.process.start()
    yield running
    running.process.stop()


def test_kubelet_probes_pass_without_the_internal_token(proxy: Pod) -> None:
    address = f"127.0.0.1:{proxy.port('MILVUS_AUTH_INTERNAL_PORT')}"
    with grpc.insecure_channel(address) as channel:
        probe = health_pb2_grpc.HealthStub(channel)
        reply = probe.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_generated_root_password_opens_milvus_and_milvus_does_not(proxy: Pod) -> None:
    password = proxy.file("MILVUS_AUTH_ROOT_PASSWORD_FILE")
    address = f"127.0.0.1:{proxy.port('MILVUS_AUTH_PORT')}"
    client = MilvusClient(uri=f"http://{address}", user="root", password=password, timeout=10)
    try:
        assert "root" in client.list_users()
    finally:
        client.close()
    well_known = base64.b64encode(b"root:Milvus").decode()
    with grpc.insecure_channel(address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListCredUsers(
                milvus_pb2.ListCredUsersRequest(),
                metadata=(("authorization", well_known),),
                timeout=5,
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert password not in proxy.process.log()


def test_internal_port_requires_the_generated_token(proxy: Pod) -> None:
    token = proxy.file("MILVUS_AUTH_INTERNAL_TOKEN_FILE")
    request = proxy_pb2.InvalidateCredCacheRequest(username="root")
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port('MILVUS_AUTH_INTERNAL_PORT')}") as channel:
        stub = proxy_pb2_grpc.ProxyStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.InvalidateCredentialCache(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status = stub.InvalidateCredentialCache(
            request, metadata=((INTERNAL_TOKEN_METADATA, token),), timeout=5
        )
    assert status.error_code == 0
    assert token not in proxy.process.log()


async def test_operator_reconciles_and_answers_its_liveness_probe(
    render: Render, tmp_path: Path, etcd: EtcdServer, meta_root: str, store: CredentialStore
) -> None:
    release = render(NAMESPACED)[0]
    async with operator_pod(release, tmp_path, etcd, meta_root) as (operator, cluster):
        assert operator.env["MILVUS_AUTH_NAMESPACE"] == NAMESPACE
        await cluster.put_secret("alice-password", "Copper-Meadow-81")
        await cluster.create_user(
            "alice", {"username": "alice", "passwordSecretRef": {"name": "alice-password"}}
        )
        await eventually(lambda: store.get("alice"), within=30, what="alice's record in etcd")
        url = operator.env["MILVUS_AUTH_LIVENESS"]
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).status)
        assert status == 200
    assert "Copper-Meadow-81" not in operator.process.log()


async def test_operator_and_proxy_share_the_generated_token(
    render: Render,
    tmp_path: Path,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
) -> None:
    # Both Pods of one release: the operator finds the proxy through the EndpointSlice of the
    # Service the chart names, calls it with the generated token, and the user becomes Ready
    # with 1/1 proxies; the proxy then accepts the password without running bcrypt.
    release = render(NAMESPACED)[0]
    proxy = proxy_pod(release, tmp_path, etcd, meta_root, milvus)
    await asyncio.to_thread(proxy.process.start)
    try:
        async with operator_pod(release, tmp_path / "operator", etcd, meta_root) as (
            operator,
            cluster,
        ):
            service_namespace, service = operator.env["MILVUS_AUTH_PROXY_SERVICE"].split("/")
            add_endpoint_slice(
                cluster.api, service_namespace, service, proxy.port("MILVUS_AUTH_INTERNAL_PORT")
            )
            await cluster.put_secret("bob-password", "Velvet-Harbor-63")
            await cluster.create_user(
                "bob", {"username": "bob", "passwordSecretRef": {"name": "bob-password"}}
            )
            await eventually(
                lambda: (
                    cluster.status("bob").get("proxies", {}).get("updated") == 1
                    and cluster.condition("bob").get("status") == "True"
                ),
                within=30,
                what="bob Ready with 1/1 proxies",
            )
        uri = f"http://127.0.0.1:{proxy.port('MILVUS_AUTH_PORT')}"
        client = MilvusClient(uri=uri, user="bob", password="Velvet-Harbor-63", timeout=10)
        try:
            client.list_collections()
        finally:
            client.close()
        assert bcrypt_runs(proxy) == 0  # pre-warmed by the operator's UpdateCredentialCache
    finally:
        await asyncio.to_thread(proxy.process.stop)


def add_endpoint_slice(
    api: kmock.KubernetesEmulator, namespace: str, service: str, port: int
) -> None:
    """What the EndpointSlice controller publishes for one ready proxy Pod."""
    api.objects[kmock.resource("discovery.k8s.io/v1/endpointslices"), namespace, service] = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": namespace,
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "internal", "port": port, "protocol": "TCP"}],
    }


def bcrypt_runs(proxy: Pod) -> float:
    url = f"http://127.0.0.1:{proxy.port('MILVUS_AUTH_METRICS_PORT')}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = [
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("milvus_auth_proxy_bcrypt_seconds_count")
    ]
    assert samples, "the proxy exports no bcrypt counter"
    return sum(samples)


def test_a_proxy_pod_with_two_cpus_runs_two_workers(
    render: Render, tmp_path: Path, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    # The CPU limit becomes --workers through the downward API (resolved as the kubelet does);
    # the probe, the generated root password and the token-guarded cache RPC work as with one.
    resources = {"requests": {"cpu": "2", "memory": "256Mi"}, "limits": {"cpu": "2"}}
    release = render({"proxy": {"resources": resources}})[0]
    proxy = proxy_pod(release, tmp_path, etcd, meta_root, milvus)
    assert proxy.env["MILVUS_AUTH_WORKERS"] == "2"
    internal = f"127.0.0.1:{proxy.port('MILVUS_AUTH_INTERNAL_PORT')}"
    proxy.process.ready = lambda: _serving(internal)
    proxy.process.start()
    try:
        assert proxy.process.process is not None
        workers = children(proxy.process.process.pid)
        assert len(workers) == 2
        password = proxy.file("MILVUS_AUTH_ROOT_PASSWORD_FILE")
        root = (("authorization", base64.b64encode(f"root:{password}".encode()).decode()),)
        port = proxy.port("MILVUS_AUTH_PORT")
        with channels_on_every_worker(port, workers) as opened:
            for channel in opened.one_per_worker():
                stub = milvus_pb2_grpc.MilvusServiceStub(channel)
                stub.ListCredUsers(milvus_pb2.ListCredUsersRequest(), metadata=root, timeout=10)
        token = proxy.file("MILVUS_AUTH_INTERNAL_TOKEN_FILE")
        with grpc.insecure_channel(internal) as channel:
            status = proxy_pb2_grpc.ProxyStub(channel).InvalidateCredentialCache(
                proxy_pb2.InvalidateCredCacheRequest(username="root"),
                metadata=((INTERNAL_TOKEN_METADATA, token),),
                timeout=10,
            )
        assert status.error_code == 0
        assert bcrypt_runs(proxy) == 2  # root verified once by each worker
    finally:
        assert proxy.process.stop() == 0
    assert password not in proxy.process.log()
    assert token not in proxy.process.log()


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
