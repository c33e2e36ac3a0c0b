"""The store against an etcd with its own authentication on (--etcd-user/--etcd-password-file)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from aetcd import rpc

from milvus_auth.core import CredentialRecord, KeyLayout
from milvus_auth.store import CredentialStore, Endpoint, EtcdSettings, EtcdUnavailable
from tests.harness.processes import EtcdServer

ETCD_ROOT_PASSWORD = "etcd-root-pw"


def enable_etcd_auth(endpoint: str) -> None:
    """`etcdctl user add root && etcdctl auth enable`, through etcd's own gRPC API."""
    with grpc.insecure_channel(endpoint) as channel:
        auth = rpc.rpc_pb2_grpc.AuthStub(channel)
        auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=ETCD_ROOT_PASSWORD), timeout=5)
        auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=5)
        auth.AuthEnable(rpc.AuthEnableRequest(), timeout=5)


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd-auth"))
    server.start()
    enable_etcd_auth(server.endpoint)
    yield server
    server.stop()


def settings(server: EtcdServer, password: str | None) -> EtcdSettings:
    return EtcdSettings(
        endpoints=(Endpoint.parse(server.endpoint),),
        user="root" if password else None,
        password=password,
        timeout=2.0,
    )


async def test_etcd_user_and_password(auth_etcd: EtcdServer, layout: KeyLayout) -> None:
    async with CredentialStore(settings(auth_etcd, ETCD_ROOT_PASSWORD), layout) as store:
        await store.create(CredentialRecord("alice", "$2a$04$" + "d" * 53))
        assert await store.list_usernames() == ["alice"]


@pytest.mark.parametrize("password", [None, "wrong-password"])
async def test_wrong_or_missing_etcd_credentials(
    auth_etcd: EtcdServer, layout: KeyLayout, password: str | None
) -> None:
    async with CredentialStore(settings(auth_etcd, password), layout) as store:
        with pytest.raises(EtcdUnavailable, match="is unavailable: etcdserver: "):
            await store.list_usernames()
