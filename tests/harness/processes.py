"""Starting and stopping real server processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.harness.tls import TlsFiles


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc), oldest first."""
    found: list[tuple[int, int]] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(fields[19]), int(stat.parent.name)))
    return [child for _, child in sorted(found)]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout} s")


class ServerProcess:
    """A child process with its log file; `start` waits for `ready`, `stop` sends `stop_signal`.

    With `own_group`, the child leads its own process group, so a kill after a stop that timed
    out also takes whatever it started (the real Milvus's wrapper runs the Go server as a child).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_signal: int = signal.SIGTERM,
        own_group: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready = ready
        self.env = env
        self.start_timeout = start_timeout
        self.stop_signal = stop_signal
        self.own_group = own_group
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until ready; fail with the log's tail if it exits or never answers."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=self.own_group,
        )
        log.close()
        try:
            wait_until(self._ready_or_dead, timeout=self.start_timeout, what=self.name)
        except TimeoutError:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")

    def _ready_or_dead(self) -> bool:
        return self.process is None or self.process.poll() is not None or self.ready()

    def stop(self, timeout: float = 10.0) -> int | None:
        """`stop_signal`, then SIGKILL after `timeout`; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(self.stop_signal)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL at once (a crash, not a shutdown); with `own_group`, its whole group."""
        if self.process is not None and self.process.poll() is None:
            if self.own_group:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
            self.process.wait()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """The whole log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def venv_script(name: str) -> str:
    """A console script installed next to this interpreter (the project's .venv)."""
    found = Path(sys.executable).parent / name
    if not found.exists():
        raise RuntimeError(f"no {name} at {found}: run `make test` (it installs .[dev])")
    return str(found)


def etcd_binary() -> str:
    """The etcd server binary; the Makefile installs Debian's etcd-server when it is missing."""
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise RuntimeError("no etcd binary on PATH: run `make test` (it installs etcd-server)")
    return found


class EtcdServer(ServerProcess):
    """A single-member etcd on free loopback ports with its own data dir; restartable.

    With `tls`, clients must connect over TLS and present a certificate signed by its CA.
    `data_dir` (default `workdir/etcd-data`) may be on a memory file system: a test etcd need
    not survive the machine, and fsyncs on a shared CI disk are its slowest step.
    """

    def __init__(
        self, workdir: Path, tls: TlsFiles | None = None, data_dir: Path | None = None
    ) -> None:
        self.client_port = free_port()
        peer_port = free_port()
        scheme = "https" if tls else "http"
        client_url = f"{scheme}://127.0.0.1:{self.client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        argv = [
            etcd_binary(),
            *("--name", "test", "--data-dir", str(data_dir or workdir / "etcd-data")),
            *("--listen-client-urls", client_url, "--advertise-client-urls", client_url),
            *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
            *("--initial-cluster", f"test={peer_url}", "--log-level", "warn"),
        ]
        if tls:
            argv += [
                *("--cert-file", str(tls.server_cert), "--key-file", str(tls.server_key)),
                *("--trusted-ca-file", str(tls.ca), "--client-cert-auth"),
            ]
        super().__init__(
            "etcd",
            argv,
            log_path=workdir / "etcd.log",
            ready=lambda: port_open(self.client_port),
            env={"ETCD_UNSUPPORTED_ARCH": "arm64"} if os.uname().machine == "aarch64" else None,
        )

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:<port>`."""
        return f"127.0.0.1:{self.client_port}"
