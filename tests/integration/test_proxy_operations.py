"""Operations: TLS and mutual TLS on the public port, flag errors, metrics, exit codes."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient

from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, ServerProcess, free_port, port_open
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess, run_proxy_command
from tests.harness.tls import TlsFiles, make_tls_files

GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
ROOT = (("authorization", base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()),)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def tls_proxy(
    factory: ProxyFactory, etcd: EtcdServer, meta_root: str, upstream: str, *args: str
) -> ProxyProcess:
    return factory(
        etcd_endpoint=etcd.endpoint, meta_root=meta_root, upstream=upstream, extra_args=args
    )


def secure_call(proxy: ProxyProcess, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    with grpc.secure_channel(proxy.address, credentials) as channel:
        try:
            channel.unary_unary(GET_VERSION)(b"", metadata=ROOT, timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_tls_public_port(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
    tls: TlsFiles,
) -> None:
    proxy = tls_proxy(
        proxy_factory,
        etcd,
        meta_root,
        milvus.endpoint,
        "--tls-cert",
        str(tls.server_cert),
        "--tls-key",
        str(tls.server_key),
    )
    trusted = grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes())
    assert secure_call(proxy, trusted) == grpc.StatusCode.OK
    with grpc.insecure_channel(proxy.address) as plain, pytest.raises(grpc.RpcError) as refused:
        plain.unary_unary(GET_VERSION)(b"", metadata=ROOT, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    client = MilvusClient(
        uri=f"https://{proxy.address}",
        user="root",
        password=ROOT_PASSWORD,
        server_pem_path=str(tls.ca),
        server_name="localhost",
        timeout=10,
    )
    try:
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()


def test_mutual_tls_needs_a_client_certificate(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
    tls: TlsFiles,
) -> None:
    proxy = tls_proxy(
        proxy_factory,
        etcd,
        meta_root,
        milvus.endpoint,
        "--tls-cert",
        str(tls.server_cert),
        "--tls-key",
        str(tls.server_key),
        "--tls-client-ca",
        str(tls.ca),
    )
    ca = tls.ca.read_bytes()
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
    assert secure_call(proxy, anonymous) == grpc.StatusCode.UNAVAILABLE
    with_certificate = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=tls.client_key.read_bytes(),
        certificate_chain=tls.client_cert.read_bytes(),
    )
    assert secure_call(proxy, with_certificate) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--upstream host:port is required"),
        (["--upstream", "nohost"], "--upstream must be host:port"),
        (["--upstream", "h:1", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--upstream", "h:1", "--root-password-file", "/nonexistent"], "cannot read"),
        (["--upstream", "h:1", "--port", "70000"], "a port is 0..65535"),
        (["--upstream", "h:1", "--auth-enabled", "maybe"], "expected true or false"),
    ],
)
def test_bad_flags_exit_1_with_a_clear_message(args: list[str], message: str) -> None:
    done = run_proxy_command(*args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_auth_on_without_root_refuses_to_start(
    etcd: EtcdServer, meta_root: str, tmp_path: Path
) -> None:
    done = run_proxy_command(
        "--upstream",
        "127.0.0.1:1",
        "--etcd-endpoints",
        etcd.endpoint,
        "--meta-root",
        meta_root,
        "--port",
        str(free_port()),
        "--internal-port",
        str(free_port()),
    )
    assert done.returncode == 1
    assert "--root-password-file" in done.stderr


def test_etcd_unreachable_at_start_exits_2() -> None:
    done = run_proxy_command(
        "--upstream",
        "127.0.0.1:1",
        "--etcd-endpoints",
        f"127.0.0.1:{free_port()}",
        "--etcd-timeout",
        "1",
        "--port",
        str(free_port()),
        "--internal-port",
        str(free_port()),
    )
    assert done.returncode == 2
    assert "etcd" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_count_auth_results(proxy: ProxyProcess) -> None:
    with grpc.insecure_channel(proxy.address) as channel:
        channel.unary_unary(GET_VERSION)(b"", metadata=ROOT, timeout=5)
        with pytest.raises(grpc.RpcError):
            channel.unary_unary(GET_VERSION)(b"", timeout=5)
    assert proxy.metric("auth_total", result="success") >= 1
    assert proxy.metric("auth_total", result="failure", reason="missing_authorization") == 1
    assert proxy.metric("bcrypt_seconds_count") == 1


def test_environment_variables_configure_the_proxy(
    etcd: EtcdServer, meta_root: str, milvus: MilvusLite, tmp_path: Path
) -> None:
    root_file = tmp_path / "root"
    root_file.write_text(ROOT_PASSWORD + "\n")
    port, internal_port = free_port(), free_port()
    env = {
        "MILVUS_AUTH_UPSTREAM": milvus.endpoint,
        "MILVUS_AUTH_HOST": "127.0.0.1",
        "MILVUS_AUTH_PORT": str(port),
        "MILVUS_AUTH_INTERNAL_PORT": str(internal_port),
        "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
        "MILVUS_AUTH_META_ROOT": meta_root,
        "MILVUS_AUTH_ROOT_PASSWORD_FILE": str(root_file),
        "MILVUS_AUTH_BCRYPT_COST": "4",
    }
    proxy = ServerProcess(
        "env-proxy",
        [sys.executable, "-m", "milvus_auth.cli", "proxy"],
        log_path=tmp_path / "env-proxy.log",
        ready=lambda: port_open(port),
        env=env,
    )
    proxy.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            channel.unary_unary(GET_VERSION)(b"", metadata=ROOT, timeout=10)
    finally:
        assert proxy.stop() == 0


def test_a_bad_environment_variable_is_named() -> None:
    done = run_proxy_command(env={**os.environ, "MILVUS_AUTH_PORT": "not-a-port"})
    assert done.returncode == 1
    assert "MILVUS_AUTH_PORT" in done.stderr
