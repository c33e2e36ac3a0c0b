"""A real milvus-lite server process as the proxy's upstream, and its pytest fixture.

milvus-lite is a pure-Python Milvus gRPC server (no auth, no credential RPCs): exactly the
"any Milvus" the proxy fronts. One per test session; tests use their own collection names.
Other test packages import the fixture: `from tests.harness.milvus import milvus  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.processes import ServerProcess, free_port, port_open, venv_script


class MilvusLite(ServerProcess):
    """`milvus-lite server` on a free loopback port with its own data dir; restartable."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            "milvus-lite",
            [
                venv_script("milvus-lite"),
                "server",
                "--data-dir",
                str(workdir / "milvus-data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            log_path=workdir / "milvus-lite.log",
            ready=lambda: port_open(self.port),
            start_timeout=60.0,
        )

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:<port>`, as the proxy's --upstream takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        """The URI pymilvus connects to directly (bypassing the proxy)."""
        return f"http://{self.endpoint}"


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLite]:
    """One milvus-lite for the session; fails (never skips) when it cannot start."""
    server = MilvusLite(tmp_path_factory.mktemp("milvus"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def milvus(milvus_server: MilvusLite) -> MilvusLite:
    """The session's milvus-lite, started again if an earlier test stopped it."""
    if not milvus_server.running:
        milvus_server.start()
    return milvus_server
