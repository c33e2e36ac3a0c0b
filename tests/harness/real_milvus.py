"""The real Milvus 2.3.5 (PyPI `milvus`: the Go standalone server in a wheel) as an RBAC oracle.

`make test` installs it with `.[dev]` (the wheel has no requirements of its own, so it sits in
the project's venv beside pymilvus 3 and protobuf 7). It runs on an etcd of its own (tests that
restart the session's etcd would take Milvus down with it) under a unique root path, with
authorization on and root/`Milvus`. Its proxy and internal ports are
picked free; the wrapper picks the others upward from Milvus's defaults. A machine-wide lock
still lets only one test session start it at a time (other worktrees share these two cores).
Stopped with SIGINT, which the wrapper turns into stopping the Go server.

Test packages import the fixture once, in their conftest.py (imported by two modules it
would be two session fixtures, the second waiting on the lock the first holds):
`from tests.harness.real_milvus import real_milvus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import grpc
import pytest

from milvus_auth.core.grants import RbacLayout
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import Endpoint, EtcdSettings, PolicyStore
from tests.harness.processes import (
    EtcdServer,
    ServerProcess,
    free_port,
    port_open,
    venv_script,
)

ROOT_PASSWORD = "Milvus"  # Milvus's default root password (a test server)
LOCK_PATH = Path("/tmp/milvus-auth-real-milvus.lock")  # machine-wide on purpose
START_TIMEOUT = 90.0
_HASH = re.compile(rb'"encrypted_password":"\$2[ab]\$\d\d\$[./A-Za-z0-9]{53}"')


def rbac_records(endpoint: str, meta_root: str) -> dict[str, bytes]:
    """Every key under `<meta_root>/root-coord/{credential,privilege-group}/`, prefix removed;
    bcrypt hashes (salted, so never equal) replaced by a marker."""

    async def read() -> dict[str, bytes]:
        settings = EtcdSettings(endpoints=(Endpoint.parse(endpoint),))
        async with PolicyStore(settings, RbacLayout(meta_root)) as store:
            root = f"{meta_root}/root-coord/"
            found = await store.connection.call(lambda c: c.get_prefix(root.encode()))
        return {
            kv.key.decode()[len(root) :]: _HASH.sub(b'"encrypted_password":"<bcrypt>"', kv.value)
            for kv in found
            if kv.key.decode()[len(root) :].startswith(("credential/", "privilege-group/"))
        }

    return asyncio.run(read())


class RealMilvus(ServerProcess):
    """`milvus-server` with authorization on, on an external etcd under `root_path`."""

    def __init__(self, workdir: Path, *, etcd: EtcdServer, root_path: str) -> None:
        self.etcd = etcd
        self.port = free_port()
        self.internal_port = free_port()
        self.root_path = root_path
        workdir.mkdir(parents=True, exist_ok=True)
        extra = {
            "etcd.use.embed": "false",
            "etcd.endpoints": etcd.endpoint,
            "etcd.rootPath": root_path,
        }
        super().__init__(
            "milvus-server",
            [
                venv_script("milvus-server"),
                *("--data", str(workdir / "milvus")),
                *("--authorization-enabled", "true"),
                *("--proxy-port", str(self.port)),
                *("--proxy-internal-port", str(self.internal_port)),
                *(
                    arg
                    for key, value in extra.items()
                    for arg in ("--extra-config", f"{key}={value}")
                ),
            ],
            log_path=workdir / "milvus-server.log",
            ready=self._answers,
            start_timeout=START_TIMEOUT,
            stop_signal=signal.SIGINT,
            own_group=True,
        )

    @property
    def uri(self) -> str:
        """What pymilvus connects to."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def meta_root(self) -> str:
        """Milvus's meta root in etcd (`<rootPath>/meta`)."""
        return f"{self.root_path}/meta"

    def _answers(self) -> bool:
        # The proxy port opens before RootCoord has initialised RBAC; ask as root until it
        # answers a role query.
        if not port_open(self.port):
            return False
        from pymilvus import MilvusClient  # noqa: PLC0415  (slow import, only when needed)

        try:
            client = MilvusClient(uri=self.uri, token=f"root:{ROOT_PASSWORD}", timeout=2)
            try:
                return "admin" in client.list_roles()
            finally:
                client.close()
        except Exception:  # not ready yet, whatever the error
            time.sleep(0.5)
            return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGINT to the wrapper; then make sure nothing of its process group is left."""
        code = super().stop(timeout)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        return code

    def refresh_policy_cache(self) -> None:
        """`RefreshPolicyInfoCache{opType: 7}` on the internal port: re-read all RBAC records,
        sent with a client generated from the project's proxy.proto (as a RootCoord would)."""
        with grpc.insecure_channel(f"127.0.0.1:{self.internal_port}") as channel:
            stub = proxy_pb2_grpc.ProxyStub(channel)
            status = stub.RefreshPolicyInfoCache(
                proxy_pb2.RefreshPolicyInfoCacheRequest(opType=7, opKey=""), timeout=10
            )
        if status.error_code != 0 or status.code != 0:
            raise RuntimeError(f"RefreshPolicyInfoCache failed: {status}")


LOCK_WAIT = 900.0  # seconds another session's real Milvus may keep the machine's ports


def _lock(lock: IO[str]) -> None:
    """Take the machine-wide lock, or fail after LOCK_WAIT rather than hang the suite."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{LOCK_PATH} is still held after {LOCK_WAIT:.0f} s: another real Milvus "
                    "runs on this machine (or the fixture is defined twice in this session)"
                ) from None
            time.sleep(1.0)


@pytest.fixture(scope="session")
def real_milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealMilvus]:
    """One real Milvus (and its etcd) for the session; fails, never skips, if it cannot start."""
    workdir = tmp_path_factory.mktemp("real-milvus")
    LOCK_PATH.touch(exist_ok=True)
    with LOCK_PATH.open("r") as lock:
        _lock(lock)
        (workdir / "etcd").mkdir()
        etcd = EtcdServer(workdir / "etcd")
        etcd.start()
        server = RealMilvus(workdir, etcd=etcd, root_path=f"real-milvus-{uuid.uuid4().hex[:8]}")
        try:
            server.start()
            yield server
        finally:
            server.stop()
            etcd.stop()
