"""The store over mutual TLS to a real etcd that requires client certificates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from milvus_auth.core import CredentialRecord, KeyLayout
from milvus_auth.store import CredentialStore, Endpoint, EtcdSettings, EtcdUnavailable
from tests.harness.processes import EtcdServer
from tests.harness.tls import TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdServer, TlsFiles]]:
    workdir = tmp_path_factory.mktemp("etcd-tls")
    files = make_tls_files(workdir / "pki")
    server = EtcdServer(workdir, tls=files)
    server.start()
    yield server, files
    server.stop()


async def test_mutual_tls_round_trip(
    tls_etcd: tuple[EtcdServer, TlsFiles], layout: KeyLayout
) -> None:
    server, files = tls_etcd
    settings = EtcdSettings(
        endpoints=(Endpoint.parse(server.endpoint),),
        ca_file=files.ca,
        cert_file=files.client_cert,
        key_file=files.client_key,
        timeout=3.0,
    )
    async with CredentialStore(settings, layout) as store:
        await store.create(CredentialRecord("alice", "$2a$04$" + "c" * 53))
        assert await store.list_usernames() == ["alice"]


async def test_plaintext_client_is_refused(
    tls_etcd: tuple[EtcdServer, TlsFiles], layout: KeyLayout
) -> None:
    server, _ = tls_etcd
    settings = EtcdSettings(endpoints=(Endpoint.parse(server.endpoint),), timeout=2.0)
    async with CredentialStore(settings, layout) as store:
        with pytest.raises(EtcdUnavailable):
            await store.get("alice")
