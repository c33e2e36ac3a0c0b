"""`milvus-auth proxy` as a real child process, with its metrics, and a pytest fixture.

Tests and other test packages start proxies through `proxy_factory` (or `ProxyProcess`
directly): each proxy gets free ports, its own log, bcrypt cost 4 and root bootstrapped from a
password file holding `Milvus`. Import the fixture where needed:
`from tests.harness.proxy import proxy_factory  # noqa: F401`.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness.processes import ServerProcess, children, free_port, port_open
from tests.harness.tls import TlsFiles

ROOT_PASSWORD = "Milvus"  # Milvus's documented default, written to the root password file
_METRIC_PREFIX = "milvus_auth_proxy_"


def milvus_auth_binary() -> str:
    """The `milvus-auth` script installed next to this interpreter (the project's .venv)."""
    found = Path(sys.executable).parent / "milvus-auth"
    if not found.exists():
        raise RuntimeError(f"no milvus-auth at {found}: run `make test` (pip install -e .)")
    return str(found)


class ProxyProcess(ServerProcess):
    """One proxy on free loopback ports (public, internal, metrics), ready when both listen."""

    def __init__(
        self,
        workdir: Path,
        *,
        etcd_endpoint: str,
        meta_root: str,
        upstream: str,
        auth_enabled: bool = True,
        root_password: str | None = ROOT_PASSWORD,
        internal_token: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        name: str = "proxy",
        internal_tls: TlsFiles | None = None,
        internal_mutual: bool = False,
        workers: int = 1,
    ) -> None:
        """`internal_tls`: TLS on the internal port with its server pair (mutual TLS with its
        CA when `internal_mutual`); the readiness check then shows its client pair."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.internal_tls = internal_tls
        self.port = free_port()
        self.internal_port = free_port()
        self.metrics_port = free_port()
        argv = [
            milvus_auth_binary(),
            "proxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--internal-port",
            str(self.internal_port),
            "--metrics-port",
            str(self.metrics_port),
            "--upstream",
            upstream,
            "--auth-enabled",
            "true" if auth_enabled else "false",
            "--etcd-endpoints",
            etcd_endpoint,
            "--meta-root",
            meta_root,
            "--bcrypt-cost",
            "4",
            "--shutdown-grace",
            "2",
            # Explicit: the default is one per CPU, and most tests are about one process.
            "--workers",
            str(workers),
        ]
        if root_password is not None:
            argv += ["--root-password-file", str(_secret(workdir, f"{name}-root", root_password))]
        if internal_token is not None:
            token_file = _secret(workdir, f"{name}-internal-token", internal_token)
            argv += ["--internal-token-file", str(token_file)]
        if internal_tls is not None:
            argv += ["--internal-tls-cert", str(internal_tls.server_cert)]
            argv += ["--internal-tls-key", str(internal_tls.server_key)]
            if internal_mutual:
                argv += ["--internal-tls-client-ca", str(internal_tls.ca)]
        super().__init__(
            name,
            [*argv, *extra_args],
            log_path=workdir / f"{name}.log",
            ready=lambda: port_open(self.port) and self.serving(),
            env=env,
            # Workers start together on the test machine's two shared cores.
            start_timeout=30.0 * workers,
        )

    def worker_pids(self) -> list[int]:
        """The processes serving the public port: the workers, or this process alone."""
        assert self.process is not None
        return children(self.process.pid) or [self.process.pid]

    def serving(self) -> bool:
        """Whether this process's gRPC health service answers SERVING on the internal port.

        A health answer, not just an open port: a TCP connect can reach some other process
        that got the port first (or, rarely, connect to itself), and the test would then talk
        to the wrong server for its whole length.
        """
        with self.internal_channel() as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def internal_channel(self) -> grpc.Channel:
        """A channel to the internal port: TLS with the client pair when the port has TLS."""
        tls = self.internal_tls
        if tls is None:
            return grpc.insecure_channel(self.internal_address)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca.read_bytes(),
            private_key=tls.client_key.read_bytes(),
            certificate_chain=tls.client_cert.read_bytes(),
        )
        return grpc.secure_channel(self.internal_address, credentials)

    @property
    def address(self) -> str:
        """`127.0.0.1:<public port>` for grpc channels."""
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        """The URI pymilvus connects to."""
        return f"http://{self.address}"

    @property
    def internal_address(self) -> str:
        """`127.0.0.1:<internal port>` for the cache RPCs and health."""
        return f"127.0.0.1:{self.internal_port}"

    def metrics_text(self) -> str:
        """The Prometheus exposition text of this proxy."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `milvus_auth_proxy_<name>` whose labels include `labels`."""
        wanted = [f'{key}="{value}"' for key, value in labels.items()]
        total = 0.0
        for line in self.metrics_text().splitlines():
            sample, _, value = line.rpartition(" ")
            if not sample.startswith(_METRIC_PREFIX + name):
                continue
            metric_name = sample.split("{", 1)[0]
            if metric_name != _METRIC_PREFIX + name:
                continue
            if all(label in sample for label in wanted):
                total += float(value)
        return total

    def bcrypt_runs(self) -> int:
        """How many bcrypt verifications this proxy ran."""
        return int(self.metric("bcrypt_seconds_count"))


def _secret(workdir: Path, name: str, value: str) -> Path:
    path = workdir / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


ProxyFactory = Callable[..., ProxyProcess]


PORT_ATTEMPTS = 3


@pytest.fixture
def proxy_factory(workdir: Path) -> Iterator[ProxyFactory]:
    """Start proxies with `factory(etcd_endpoint=..., meta_root=..., upstream=..., ...)`.

    Every proxy started is stopped (SIGTERM) at the end of the test.
    """
    started: list[ProxyProcess] = []

    def factory(**kwargs: object) -> ProxyProcess:
        kwargs.setdefault("name", f"proxy{len(started)}")
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return start(kwargs)
            except RuntimeError as error:
                # free_port() only says a port was free a moment ago: another process may
                # bind it first. A new ProxyProcess picks new ports; anything else fails.
                if "Address already in use" not in str(error):
                    raise
        return start(kwargs)

    def start(kwargs: dict[str, object]) -> ProxyProcess:
        proxy = ProxyProcess(workdir, **kwargs)  # type: ignore[arg-type]
        started.append(proxy)
        proxy.start()
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


def run_proxy_command(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`milvus-auth proxy ARGS` to its exit (for the start-up refusals), output captured;
    `env` replaces the environment when given."""
    return subprocess.run(
        [sys.executable, "-m", "milvus_auth.cli", "proxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=None if env is None else dict(env),
    )
