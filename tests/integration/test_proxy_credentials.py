"""pymilvus' user management through a real proxy process, on real etcd and milvus-lite.

`create_user`, `update_password`, `drop_user` and `list_users` are served by the proxy itself;
their failures reach the client as `MilvusException` with Milvus's code and message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, free_port
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess, run_proxy_command

ALICE_PASSWORD = "AlicePass1"

Login = Callable[..., MilvusClient]


@pytest.fixture
def login(proxy: ProxyProcess) -> Iterator[Login]:
    """`login(user, password)`: a pymilvus client through the proxy, closed after the test."""
    clients: list[MilvusClient] = []

    def connect(user: str = "root", password: str = ROOT_PASSWORD) -> MilvusClient:
        client = MilvusClient(uri=proxy.uri, user=user, password=password, timeout=10)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def _login_refused(login: Login, user: str, password: str) -> None:
    # pymilvus may reuse a connection for the same uri and user (no new Connect): then the
    # call itself is refused, as a raw RpcError (pymilvus wraps only Connect's failure).
    with pytest.raises((MilvusException, grpc.RpcError)) as refused:
        login(user, password).list_collections()
    if isinstance(refused.value, grpc.RpcError):
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _refused(call: Callable[[], object]) -> MilvusException:
    with pytest.raises(MilvusException) as refused:
        call()
    return refused.value


def _denied(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as denied:
        call()
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    return denied.value


def test_user_lifecycle_through_pymilvus(login: Login, proxy: ProxyProcess) -> None:
    root = login()
    root.create_user("alice", ALICE_PASSWORD)
    assert sorted(root.list_users()) == ["alice", "root"]

    alice = login("alice", ALICE_PASSWORD)
    assert isinstance(alice.list_collections(), list)  # forwarded to milvus-lite
    alice.update_password("alice", ALICE_PASSWORD, "NewPass123")
    assert isinstance(login("alice", "NewPass123").list_collections(), list)
    _login_refused(login, "alice", ALICE_PASSWORD)

    root.drop_user("alice")
    assert root.list_users() == ["root"]
    _login_refused(login, "alice", "NewPass123")
    assert "NewPass123" not in proxy.log()
    assert ALICE_PASSWORD not in proxy.log()


def test_errors_carry_milvus_codes_and_messages(login: Login) -> None:
    root = login()
    root.create_user("alice", ALICE_PASSWORD)
    alice = login("alice", ALICE_PASSWORD)

    exists = _refused(lambda: root.create_user("alice", ALICE_PASSWORD))
    assert (exists.code, exists.message) == (65535, "user already exists: alice")

    short = _refused(lambda: root.create_user("bob", "short"))
    assert short.code == 1100
    assert short.message == (
        "invalid password length: invalid parameter[5 out of range 6 <= value <= 72]"
    )

    bad_name = _refused(lambda: root.create_user("b-o b", ALICE_PASSWORD))
    assert bad_name.code == 1100
    assert bad_name.message.endswith("but got  : invalid parameter")

    root_delete = _refused(lambda: root.drop_user("root"))
    assert (root_delete.code, root_delete.message) == (
        1401,
        "root user cannot be deleted: privilege not permitted",
    )

    wrong_old = _refused(lambda: alice.update_password("alice", "WrongOld1", "NewPass123"))
    assert (wrong_old.code, wrong_old.message) == (
        1400,
        "old password not correct for alice: not authenticated",
    )

    # Refused by the privilege check before the handler, as Milvus's PrivilegeInterceptor
    # does: a gRPC PERMISSION_DENIED status, not a failed `common.Status` in the body.
    not_admin = _denied(lambda: alice.create_user("bob", ALICE_PASSWORD))
    assert not_admin.details() == (
        "PrivilegeCreateOwnership: permission deny to alice in the `default` database"
    )

    other = _denied(lambda: alice.update_password("root", ROOT_PASSWORD, "Hijacked1"))
    assert other.details() == (
        "PrivilegeUpdateUser: permission deny to alice in the `default` database"
    )
    assert sorted(root.list_users()) == ["alice", "root"]


def test_super_user_resets_a_password_without_the_old_one(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        extra_args=["--super-users", "root"],
    )
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        root.create_user("alice", ALICE_PASSWORD)
        root.update_password("alice", "forgotten", "Reset1234")
        alice = MilvusClient(uri=proxy.uri, user="alice", password="Reset1234", timeout=10)
        alice.close()
    finally:
        root.close()


def test_with_auth_off_anyone_manages_users(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    # As in Milvus: credential RPCs are served to anyone when authentication is off.
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        auth_enabled=False,
        root_password=None,
    )
    anonymous = MilvusClient(uri=proxy.uri, timeout=10)
    try:
        anonymous.create_user("alice", ALICE_PASSWORD)
        assert anonymous.list_users() == ["alice"]
        anonymous.update_password("alice", ALICE_PASSWORD, "NewPass123")
        anonymous.drop_user("alice")
        assert anonymous.list_users() == []
    finally:
        anonymous.close()


STRICT_POLICY = ["--password-min-length", "12", "--password-min-classes", "3"]


def test_the_password_policy_applies_to_create_and_update(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    strict = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        root_password="Quartz-Lantern-2026",
        extra_args=[*STRICT_POLICY, "--password-min-score", "3"],
    )
    root = MilvusClient(uri=strict.uri, user="root", password="Quartz-Lantern-2026", timeout=10)
    try:
        weak = _refused(lambda: root.create_user("ivy", "Password1234!"))
        assert weak.code == 1100
        assert "weak password: invalid parameter[estimated strength" in weak.message
        assert "Password1234!" not in weak.message
        assert "ivy" not in root.list_users()
        root.create_user("ivy", "Tangerine-Orbit-47")
        short = _refused(lambda: root.update_password("ivy", "Tangerine-Orbit-47", "Ab1!xyz9"))
        assert "at least 12 bytes" in short.message
        named = _refused(
            lambda: root.update_password("ivy", "Tangerine-Orbit-47", "ivy-IVY-ivy-99!")
        )
        assert "must not contain the username" in named.message
    finally:
        root.close()
    ivy = MilvusClient(uri=strict.uri, user="ivy", password="Tangerine-Orbit-47", timeout=10)
    try:
        assert isinstance(ivy.list_collections(), list)  # the refused changes changed nothing
    finally:
        ivy.close()
    assert "Password1234!" not in strict.log()


def test_a_weak_root_bootstrap_password_refuses_to_start(
    etcd: EtcdServer, meta_root: str, tmp_path: Path
) -> None:
    root_file = tmp_path / "root"
    root_file.write_text("Milvus\n")
    done = run_proxy_command(
        "--upstream",
        "127.0.0.1:1",
        "--root-password-file",
        str(root_file),
        *STRICT_POLICY,
        env={
            "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
            "MILVUS_AUTH_META_ROOT": f"{meta_root}-weak-root",
            "MILVUS_AUTH_PORT": str(free_port()),
            "MILVUS_AUTH_INTERNAL_PORT": str(free_port()),
        },
    )
    assert done.returncode != 0
    assert "the root password file is unusable: weak password" in done.stderr
    assert "Milvus" not in done.stderr.replace("MILVUS", "").split("unusable")[1]
    assert "Traceback" not in done.stderr
