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
from collections.abc import Iterator
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
from tests.harness.processes import EtcdServer, ServerProcess, free_port, port_open
from tests.harness.proxy import milvus_auth_binary
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


class PodFiles:
    """The rendered Secrets as the kubelet would mount them, under `root`."""

    def __init__(self, release: Release, deployment: dict[str, Any], root: Path) -> None:
        self.root = root
        secrets = {obj["metadata"]["name"]: obj for obj in release.find("Secret")}
        spec = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        (container,) = containers(deployment)
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "secret" not in volume:
                continue
            secret = secrets[volume["secret"]["secretName"]]
            directory = self.path(mount["mountPath"])
            directory.mkdir(parents=True)
            for key, value in secret["data"].items():
                (directory / key).write_bytes(base64.b64decode(value))

    def path(self, pod_path: str) -> Path:
        return self.root / pod_path.lstrip("/")


@dataclass(frozen=True)
class RunningPod:
    """The container's process and the environment it was given."""

    process: ServerProcess
    env: dict[str, str]


@pytest.fixture
def pod(
    render: Render, tmp_path: Path, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> Iterator[RunningPod]:
    """The default chart's proxy container, running; with its environment and its files."""
    release = render({})[0]
    deployment = release.one("Deployment", "-proxy")
    files = PodFiles(release, deployment, tmp_path / "pod")
    env = {
        name: str(files.path(value)) if value.startswith(MOUNT_ROOT) else value
        for name, value in env_of(containers(deployment)[0]).items()
    }
    ports = {"MILVUS_AUTH_PORT": free_port(), "MILVUS_AUTH_INTERNAL_PORT": free_port()}
    env |= {name: str(port) for name, port in ports.items()}
    env |= {
        "MILVUS_AUTH_HOST": "127.0.0.1",
        "MILVUS_AUTH_METRICS_PORT": str(free_port()),
        "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
        "MILVUS_AUTH_META_ROOT": meta_root,
        "MILVUS_AUTH_UPSTREAM": milvus.endpoint,
        "MILVUS_AUTH_BCRYPT_COST": "4",  # only to keep the test fast
    }
    process = ServerProcess(
        "pod-proxy",
        [milvus_auth_binary(), *containers(deployment)[0]["args"]],
        log_path=tmp_path / "proxy.log",
        ready=lambda: all(port_open(port) for port in ports.values()),
        env=env,
    )
    process.start()
    yield RunningPod(process, env)
    process.stop()


def test_kubelet_probes_pass_without_the_internal_token(
    pod: RunningPod,
) -> None:
    env = pod.env
    address = f"127.0.0.1:{env['MILVUS_AUTH_INTERNAL_PORT']}"
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_generated_root_password_opens_milvus_and_milvus_does_not(
    pod: RunningPod,
) -> None:
    process, env = pod.process, pod.env
    password = Path(env["MILVUS_AUTH_ROOT_PASSWORD_FILE"]).read_text(encoding="utf-8")
    address = f"127.0.0.1:{env['MILVUS_AUTH_PORT']}"
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
    assert password not in process.log()


def test_internal_port_requires_the_generated_token(
    pod: RunningPod,
) -> None:
    process, env = pod.process, pod.env
    token = Path(env["MILVUS_AUTH_INTERNAL_TOKEN_FILE"]).read_text(encoding="utf-8")
    request = proxy_pb2.InvalidateCredCacheRequest(username="root")
    with grpc.insecure_channel(f"127.0.0.1:{env['MILVUS_AUTH_INTERNAL_PORT']}") as channel:
        stub = proxy_pb2_grpc.ProxyStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.InvalidateCredentialCache(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status = stub.InvalidateCredentialCache(
            request, metadata=((INTERNAL_TOKEN_METADATA, token),), timeout=5
        )
    assert status.error_code == 0
    assert token not in process.log()


async def test_rendered_operator_reconciles_and_answers_its_liveness_probe(
    render: Render, tmp_path: Path, etcd: EtcdServer, meta_root: str, store: CredentialStore
) -> None:
    # The operator container as rendered for one watched namespace, against kmock as the
    # Kubernetes API (the kubeconfig flag replaces the in-cluster service account).
    release = render({"operator": {"scope": "namespaced", "watchNamespaces": [NAMESPACE]}})[0]
    deployment = release.one("Deployment", "-operator")
    (container,) = containers(deployment)
    files = PodFiles(release, deployment, tmp_path / "pod")
    health_port, metrics_port = free_port(), free_port()
    env = {
        name: str(files.path(value)) if value.startswith(MOUNT_ROOT) else value
        for name, value in env_of(container).items()
    }
    assert env["MILVUS_AUTH_NAMESPACE"] == NAMESPACE
    assert env["MILVUS_AUTH_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    async with Emulator() as api, kmock.Server(api):
        declare_resources(api)
        env |= {
            "MILVUS_AUTH_LIVENESS": f"http://127.0.0.1:{health_port}/healthz",
            "MILVUS_AUTH_METRICS_PORT": str(metrics_port),
            "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
            "MILVUS_AUTH_META_ROOT": meta_root,
            "MILVUS_AUTH_BCRYPT_COST": "4",
            "MILVUS_AUTH_KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", str(api.url))),
        }
        process = ServerProcess(
            "pod-operator",
            [milvus_auth_binary(), *container["args"]],
            log_path=tmp_path / "operator.log",
            ready=lambda: port_open(health_port),
            env=env,
        )
        await asyncio.to_thread(process.start)
        try:
            cluster = Cluster(api)
            await cluster.put_secret("alice-password", "alice-secret-1")
            await cluster.create_user(
                "alice", {"username": "alice", "passwordSecretRef": {"name": "alice-password"}}
            )
            await eventually(lambda: store.get("alice"), within=30, what="alice's record in etcd")
            await eventually(
                lambda: cluster.condition("alice").get("status") == "True",
                within=30,
                what="alice Ready",
            )
            url = f"http://127.0.0.1:{health_port}/healthz"
            status = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).status)
            assert status == 200
        finally:
            await asyncio.to_thread(process.stop)
        assert "alice-secret-1" not in process.log()
