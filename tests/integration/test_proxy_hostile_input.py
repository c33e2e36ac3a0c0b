"""Hostile clients against a real proxy process: unbounded usernames, passwords in the user
field, timing that could tell users apart, and floods meant to lock another client out.

Observed from outside: the status the client gets, the proxy's log file and its metrics.
"""

from __future__ import annotations

import base64

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2

from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess
from tests.harness.relay import SourceRelay

AUTH_CHECK_FAILURE = "auth check failure, please check username and password are correct"
LIST = "/milvus.proto.milvus.MilvusService/ShowCollections"
SWAPPED_PASSWORD = "Tulip#Cellar-2931"
ALICE_PASSWORD = "Alice-Pass-1"  # what a client that swapped the fields sends as user


def call(address: str, user: str, password: str) -> grpc.RpcError | None:
    """One ShowCollections to `address` with these credentials; the error, if any."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = milvus_pb2.ShowCollectionsRequest().SerializeToString()
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary(LIST)(request, metadata=[("authorization", token)], timeout=10)
        except grpc.RpcError as error:
            return error
    return None


@pytest.fixture
def tight_proxy(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> ProxyProcess:
    """A proxy whose limits refuse the second failure of any user or address."""
    return proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        extra_args=["--rate-limit-user-burst", "1", "--rate-limit-peer-burst", "1"],
    )


def test_huge_usernames_are_refused_before_log_etcd_and_limiter(tight_proxy: ProxyProcess) -> None:
    huge = "x" * 180_000
    before = len(tight_proxy.log())
    for _ in range(40):
        error = call(tight_proxy.address, huge, "whatever-1")
        assert error is not None
        assert (error.code(), error.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            AUTH_CHECK_FAILURE,
        )
    grown = tight_proxy.log()[before:]
    assert huge[:100] not in grown
    assert len(grown) < 40 * 300  # one short line each
    assert tight_proxy.metric("auth_total", result="failure", reason="invalid_username") == 40
    assert tight_proxy.metric("cache_lookups_total", outcome="miss") == 0  # no etcd read
    # A burst of 1 per user and per address: root's first (uncached) login would be refused
    # had any of the 40 spent this address's token.
    assert call(tight_proxy.address, "root", ROOT_PASSWORD) is None


def test_a_password_typed_as_the_username_is_never_logged(proxy: ProxyProcess) -> None:
    with pytest.raises(MilvusException):
        MilvusClient(uri=proxy.uri, user=SWAPPED_PASSWORD, password="root", timeout=10)
    error = call(proxy.address, SWAPPED_PASSWORD, "root")
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        # An admin swapping the arguments of create_user: Milvus's reason quotes the name.
        with pytest.raises(MilvusException):
            root.create_user(SWAPPED_PASSWORD, "carol-password")
    finally:
        root.close()
    log = proxy.log()
    assert "user=<invalid>" in log
    assert "CreateCredential user=<invalid> caller='root' result=refused" in log
    assert SWAPPED_PASSWORD not in log


def test_an_unknown_user_costs_a_bcrypt_like_a_wrong_password(proxy: ProxyProcess) -> None:
    # Timing must not tell which usernames exist: each refusal below runs exactly one bcrypt
    # (the unknown user's against a dummy hash), whatever the user.
    assert call(proxy.address, "nobody", "Wrong-Pass-1") is not None
    assert proxy.bcrypt_runs() == 1
    assert call(proxy.address, "root", "Wrong-Pass-1") is not None
    assert proxy.bcrypt_runs() == 2
    assert call(proxy.address, "root", ROOT_PASSWORD) is None  # now cached
    assert call(proxy.address, "root", "Wrong-Pass-2") is not None
    assert proxy.bcrypt_runs() == 4


def test_one_client_flooding_a_user_does_not_lock_it_out_for_others(
    proxy: ProxyProcess,
) -> None:
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        root.create_user("alice", ALICE_PASSWORD)
    finally:
        root.close()
    with SourceRelay(("127.0.0.1", proxy.port), "127.0.0.2") as relay:
        attacker = relay.address
        for i in range(15):  # past the default burst of 10 per user and address
            assert call(attacker, "alice", f"Wrong-{i}") is not None
        error = call(attacker, "alice", ALICE_PASSWORD)
        assert error is not None  # the flooding address is limited, even with the right one
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "user='alice' peer=ipv4:127.0.0.2:" in proxy.log()
    assert proxy.metric("auth_total", result="failure", reason="rate_limited") >= 5
    assert call(proxy.address, "alice", ALICE_PASSWORD) is None  # from 127.0.0.1, at once


def test_a_wrong_old_password_spends_the_login_limits(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        extra_args=["--rate-limit-user-burst", "1", "--rate-limit-user-per-second", "0"],
    )
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    alice = None
    try:
        root.create_user("alice", ALICE_PASSWORD)
        alice = MilvusClient(uri=proxy.uri, user="alice", password=ALICE_PASSWORD, timeout=10)
        before = proxy.bcrypt_runs()
        with pytest.raises(MilvusException) as wrong:
            alice.update_password("alice", "Wrong-Old-1", "Alice-New-Pass-1")
        assert wrong.value.code == 1400
        assert proxy.bcrypt_runs() == before + 1  # counted: it ran in the proxy's pool
        # The one failure allowed is spent: even the right old password is refused, unchecked.
        with pytest.raises(MilvusException) as limited:
            alice.update_password("alice", ALICE_PASSWORD, "Alice-New-Pass-1")
        assert limited.value.code == 1400
        assert proxy.bcrypt_runs() == before + 1
    finally:
        root.close()
        if alice is not None:
            alice.close()
    assert call(proxy.address, "alice", ALICE_PASSWORD) is None  # cached: never limited
    assert "Alice-New-Pass-1" not in proxy.log()
