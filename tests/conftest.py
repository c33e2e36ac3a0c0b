"""Fixtures shared by every test layer: a real etcd per session, a fresh keyspace per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from milvus_auth.core import KeyLayout
from milvus_auth.store import CredentialStore, Endpoint, EtcdSettings
from tests.harness.processes import EtcdServer
from tests.harness.real_milvus import real_milvus

# real_milvus is imported here, once, for every layer: a session fixture imported by two
# modules would be two fixtures, the second waiting forever for the lock the first holds.
__all__ = ["real_milvus"]


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One real etcd for the session, its data in memory where the machine has /dev/shm (a
    loaded CI disk once held one of its answers past the client's 5 s timeout). Tests that
    need it fail (never skip) when it cannot start."""
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="milvus-auth-etcd-", dir=memory) as data:
        server = EtcdServer(tmp_path_factory.mktemp("etcd"), data_dir=Path(data))
        server.start()
        yield server
        server.stop()


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> EtcdServer:
    """The session's etcd, started again if an earlier test stopped it."""
    if not etcd_server.running:
        etcd_server.start()
    return etcd_server


@pytest.fixture
def meta_root() -> str:
    """A meta root of this test's own, so tests never see each other's users."""
    return f"test-{uuid.uuid4().hex[:12]}/meta"


@pytest.fixture
def etcd_settings(etcd: EtcdServer) -> EtcdSettings:
    """Settings for the session's etcd, with the default timeout: a loaded CI machine can
    take over 2 s to answer while kopf, proxies and bcrypt share its two cores."""
    return EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),))


@pytest.fixture
def layout(meta_root: str) -> KeyLayout:
    """Milvus's layout under this test's meta root."""
    return KeyLayout(meta_root=meta_root)


@pytest.fixture
async def store(etcd_settings: EtcdSettings, layout: KeyLayout) -> AsyncIterator[CredentialStore]:
    """A credential store on this test's keyspace."""
    async with CredentialStore(etcd_settings, layout) as credential_store:
        yield credential_store


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch directory for process logs and files."""
    return tmp_path
