"""TLS on every hop beyond the public port: the internal port (TLS and mutual TLS), the
operator's fan-out to a real proxy over it, and the proxy to a TLS upstream with pymilvus
through it. Certificates come from the harness's throwaway CA.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus import MilvusClient

from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut, ProxyNotifier
from milvus_auth.tls import ClientTls
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess, run_proxy_command
from tests.harness.tls import TlsFiles, make_tls_files
from tests.unit.test_operator_notify import SERVICE, _Slices


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def credentials(tls: TlsFiles, *, with_certificate: bool) -> grpc.ChannelCredentials:
    if not with_certificate:
        return grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )


def test_internal_port_over_tls(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, tls: TlsFiles
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=milvus.endpoint, internal_tls=tls
    )
    address = proxy.internal_address
    with grpc.secure_channel(address, credentials(tls, with_certificate=False)) as channel:
        assert health(channel) == grpc.StatusCode.OK
    with grpc.insecure_channel(address) as plain:
        assert health(plain) == grpc.StatusCode.UNAVAILABLE
    assert "internal tls on" in proxy.log()


def test_internal_mutual_tls_refuses_a_client_without_a_certificate(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, tls: TlsFiles
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        internal_tls=tls,
        internal_mutual=True,
    )
    address = proxy.internal_address
    with grpc.secure_channel(address, credentials(tls, with_certificate=False)) as anonymous:
        assert health(anonymous) == grpc.StatusCode.UNAVAILABLE
    with grpc.secure_channel(address, credentials(tls, with_certificate=True)) as known:
        assert health(known) == grpc.StatusCode.OK


async def _fan_out(proxy: ProxyProcess, tls: ClientTls | None) -> tuple[FanOut, FanOut]:
    notifier = ProxyNotifier(
        kube=_Slices([proxy.internal_port]),  # type: ignore[arg-type]
        service=SERVICE,
        token=None,
        timeout=5.0,
        metrics=OperatorMetrics(),
        tls=tls,
    )
    try:
        return await notifier.invalidate("alice"), await notifier.refresh_policy()
    finally:
        await notifier.close()


def test_operator_fan_out_over_mutual_tls_to_a_real_proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite, tls: TlsFiles
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        internal_tls=tls,
        internal_mutual=True,
    )
    ca = tls.ca.read_bytes()
    operator_tls = ClientTls(
        ca=ca,
        server_name="localhost",  # as the chart names the internal Service, not the pod address
        certificate=tls.client_cert.read_bytes(),
        private_key=tls.client_key.read_bytes(),
    )
    assert asyncio.run(_fan_out(proxy, operator_tls)) == (FanOut(1, 1), FanOut(1, 1))
    # Without a client certificate, or without TLS, the proxy confirms nothing.
    assert asyncio.run(_fan_out(proxy, ClientTls(ca=ca))) == (FanOut(0, 1), FanOut(0, 1))
    assert asyncio.run(_fan_out(proxy, None)) == (FanOut(0, 1), FanOut(0, 1))
    # A certificate for another name is refused too.
    wrong_name = ClientTls(
        ca=ca,
        server_name="elsewhere.example",
        certificate=tls.client_cert.read_bytes(),
        private_key=tls.client_key.read_bytes(),
    )
    assert asyncio.run(_fan_out(proxy, wrong_name)) == (FanOut(0, 1), FanOut(0, 1))


@pytest.fixture
def tls_milvus(
    proxy_factory: ProxyFactory, etcd: EtcdServer, milvus: MilvusLite, tls: TlsFiles
) -> ProxyProcess:
    """milvus-lite behind mutual TLS: a milvus-auth proxy with authentication off, whose public
    port takes only clients with a certificate from the CA."""
    return proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root="tls-front/meta",
        upstream=milvus.endpoint,
        auth_enabled=False,
        root_password=None,
        name="tls-front",
        extra_args=[
            "--tls-cert",
            str(tls.server_cert),
            "--tls-key",
            str(tls.server_key),
            "--tls-client-ca",
            str(tls.ca),
        ],
    )


def _upstream_tls_flags(tls: TlsFiles, *, server_name: str, client: bool) -> list[str]:
    flags = ["--upstream-tls", "--upstream-ca", str(tls.ca), "--upstream-server-name", server_name]
    if client:
        flags += ["--upstream-cert", str(tls.client_cert), "--upstream-key", str(tls.client_key)]
    return flags


def test_pymilvus_through_a_proxy_whose_upstream_speaks_mutual_tls(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    tls: TlsFiles,
    tls_milvus: ProxyProcess,
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=tls_milvus.address,
        extra_args=_upstream_tls_flags(tls, server_name="localhost", client=True),
    )
    client = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=30)
    try:
        client.create_collection("tls_hop", dimension=4)
        client.insert("tls_hop", [{"id": i, "vector": [float(i)] * 4} for i in range(5)])
        found = client.search("tls_hop", data=[[1.0] * 4], limit=2)
        assert len(found[0]) == 2
        client.drop_collection("tls_hop")
    finally:
        client.close()
    assert proxy.metric("forwarded_total", code="OK") > 0
    assert "upstream tls on" in proxy.log()


@pytest.mark.parametrize(
    ("server_name", "client"),
    [("localhost", False), ("elsewhere.example", True)],
    ids=["no-client-certificate", "wrong-server-name"],
)
def test_a_tls_upstream_that_cannot_be_verified_or_refuses_is_unavailable(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    tls: TlsFiles,
    tls_milvus: ProxyProcess,
    server_name: str,
    client: bool,
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=tls_milvus.address,
        extra_args=_upstream_tls_flags(tls, server_name=server_name, client=client),
    )
    with grpc.insecure_channel(proxy.address) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(GET_VERSION)(b"", metadata=ROOT, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
ROOT = (("authorization", base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()),)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [
                "--internal-tls-cert",
                "/nonexistent/cert.pem",
                "--internal-tls-key",
                "/nonexistent/k",
            ],
            "--internal-tls-cert: cannot read /nonexistent/cert.pem: No such file or directory",
        ),
        (
            ["--internal-tls-cert", "{dir}", "--internal-tls-key", "{dir}"],
            "--internal-tls-cert: cannot read",
        ),
        (["--internal-tls-cert", "{text}", "--internal-tls-key", "{text}"], "is not a PEM file"),
        (
            ["--internal-tls-cert", "{text}"],
            "--internal-tls-cert and --internal-tls-key go together",
        ),
        (
            ["--internal-tls-client-ca", "{text}"],
            "--internal-tls-client-ca needs --internal-tls-cert",
        ),
        (["--upstream-ca", "{text}"], "need --upstream-tls"),
        (["--upstream-tls", "--upstream-ca", "/nonexistent/ca.pem"], "--upstream-ca: cannot read"),
        (
            ["--upstream-tls", "--upstream-cert", "{text}"],
            "--upstream-cert and --upstream-key go together",
        ),
    ],
)
def test_tls_flags_that_cannot_work_stop_the_start_with_a_clear_message(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    text = tmp_path / "not-pem.txt"
    text.write_text("hello\n")
    filled = [flag.format(dir=tmp_path, text=text) for flag in flags]
    done = run_proxy_command("--upstream", "127.0.0.1:1", *filled)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
