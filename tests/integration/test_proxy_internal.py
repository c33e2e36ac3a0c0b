"""The internal port of a real proxy process, called with a client generated from proxy.proto.

Observed through the proxy's bcrypt counter: a pre-warmed login runs no bcrypt, a dropped user's
next login runs one.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core import CredentialRecord, cache_digest, hash_password
from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, RECORD_REVISION_PROPERTY
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import CredentialStore
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, free_port
from tests.harness.proxy import (
    ROOT_PASSWORD,
    ProxyFactory,
    ProxyProcess,
    milvus_auth_binary,
    run_proxy_command,
)

TOKEN = "internal-token-for-tests"
AUTH = ((INTERNAL_TOKEN_METADATA, TOKEN),)


@pytest.fixture
def guarded(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> ProxyProcess:
    """A proxy whose internal port requires the token."""
    return proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        internal_token=TOKEN,
    )


@pytest.fixture
def cache_stub(guarded: ProxyProcess) -> Iterator[proxy_pb2_grpc.ProxyStub]:
    with grpc.insecure_channel(guarded.internal_address) as channel:
        yield proxy_pb2_grpc.ProxyStub(channel)


def _login_as_root(proxy: ProxyProcess) -> None:
    _login(proxy, "root", ROOT_PASSWORD)


def _login(proxy: ProxyProcess, user: str, password: str) -> None:
    client = MilvusClient(uri=proxy.uri, user=user, password=password, timeout=10)
    try:
        client.list_collections()
    finally:
        client.close()


async def test_prewarm_tagged_with_the_revision_of_its_write_needs_no_bcrypt(
    guarded: ProxyProcess, store: CredentialStore
) -> None:
    # What the operator does: write the record, then pre-warm with its revision. Whichever of
    # the cache update and the watch event of the write lands first, the entry stays (the
    # other order is pinned down in tests/unit/test_authenticator_coherence.py); the revision
    # is etcd's newest, which the check against forged revisions must accept.
    password = "carol-password-1"
    revision = await store.create(CredentialRecord("carol", hash_password(password, 4)))
    async with grpc.aio.insecure_channel(guarded.internal_address) as channel:
        status = await proxy_pb2_grpc.ProxyStub(channel).UpdateCredentialCache(
            proxy_pb2.UpdateCredCacheRequest(
                base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: str(revision)}),
                username="carol",
                password=cache_digest("carol", password),
            ),
            metadata=AUTH,
        )
    assert (status.error_code, status.code) == (0, 0)
    await asyncio.sleep(0.5)  # the proxy's watch sees the write well within this
    await asyncio.to_thread(_login, guarded, "carol", password)
    assert guarded.bcrypt_runs() == 0


async def test_a_forged_revision_cannot_pin_a_password_past_deletion(
    guarded: ProxyProcess, store: CredentialStore, etcd: EtcdServer, meta_root: str
) -> None:
    # The reported attack: a cache update tagged 10**18 for an existing user, then the user is
    # deleted with the CLI; the forged password used to keep working.
    await store.create(CredentialRecord("victim", hash_password("victim-password-1", 4)))
    forged = "Forged-Password-1"
    async with grpc.aio.insecure_channel(guarded.internal_address) as channel:
        status = await proxy_pb2_grpc.ProxyStub(channel).UpdateCredentialCache(
            proxy_pb2.UpdateCredCacheRequest(
                base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: str(10**18)}),
                username="victim",
                password=cache_digest("victim", forged),
            ),
            metadata=AUTH,
        )
    assert status.code == 1100
    assert "ERROR milvus_auth.proxy.services.internal cache rpc refused" in guarded.log()
    with pytest.raises(MilvusException):
        await asyncio.to_thread(_login, guarded, "victim", forged)
    deleted = await asyncio.create_subprocess_exec(
        *(milvus_auth_binary(), "users", "delete", "victim"),
        *("--etcd-endpoints", etcd.endpoint, "--meta-root", meta_root),
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(deleted.wait(), 60) == 0
    await asyncio.sleep(0.5)  # the watch event of the delete
    with pytest.raises(MilvusException):
        await asyncio.to_thread(_login, guarded, "victim", forged)


def test_update_prewarms_so_the_next_login_runs_no_bcrypt(
    guarded: ProxyProcess, cache_stub: proxy_pb2_grpc.ProxyStub
) -> None:
    # An untagged entry (a stock RootCoord's) yields to any later watch event: the event of
    # root's bootstrap write may still be on its way under load and drop the first one. So
    # each try starts empty; one try in three must log in without bcrypt.
    for _ in range(3):
        cache_stub.InvalidateCredentialCache(
            proxy_pb2.InvalidateCredCacheRequest(username="root"), metadata=AUTH
        )
        before = guarded.bcrypt_runs()
        status = cache_stub.UpdateCredentialCache(
            proxy_pb2.UpdateCredCacheRequest(
                username="root", password=cache_digest("root", ROOT_PASSWORD)
            ),
            metadata=AUTH,
        )
        assert (status.error_code, status.code) == (0, 0)
        _login_as_root(guarded)
        if guarded.bcrypt_runs() == before:
            return
    pytest.fail("a pre-warmed login ran bcrypt three times in a row")


@pytest.mark.parametrize("drop", ["invalidate", "delete-user-policy"])
def test_dropped_user_is_verified_again(
    guarded: ProxyProcess, cache_stub: proxy_pb2_grpc.ProxyStub, drop: str
) -> None:
    _login_as_root(guarded)
    _login_as_root(guarded)
    assert guarded.bcrypt_runs() == 1  # the second login was a cache hit
    if drop == "invalidate":
        status = cache_stub.InvalidateCredentialCache(
            proxy_pb2.InvalidateCredCacheRequest(username="root"), metadata=AUTH
        )
    else:
        status = cache_stub.RefreshPolicyInfoCache(
            proxy_pb2.RefreshPolicyInfoCacheRequest(opType=5, opKey="root"), metadata=AUTH
        )
    assert status.code == 0
    _login_as_root(guarded)
    assert guarded.bcrypt_runs() == 2


@pytest.mark.parametrize("metadata", [(), ((INTERNAL_TOKEN_METADATA, "not-the-token"),)])
def test_wrong_or_missing_token_is_refused(
    guarded: ProxyProcess,
    cache_stub: proxy_pb2_grpc.ProxyStub,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        cache_stub.UpdateCredentialCache(
            proxy_pb2.UpdateCredCacheRequest(
                username="root", password=cache_digest("root", "Attacker1")
            ),
            metadata=metadata,
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The attacker's digest was not accepted: root's own password still needs bcrypt.
    _login_as_root(guarded)
    assert guarded.bcrypt_runs() == 1
    assert TOKEN not in guarded.log()


def test_health_serves_without_the_token(guarded: ProxyProcess) -> None:
    with grpc.insecure_channel(guarded.internal_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _listening(port: int) -> set[str]:
    """The addresses a TCP socket listens on `port` at, from the kernel's own table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            packed = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
            ip = ipaddress.ip_address(words)
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            found.add(str(mapped or ip))  # gRPC may listen on ::ffff:127.0.0.1
    return found


def test_the_internal_port_listens_on_loopback_only_by_default(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        extra_args=["--host", "0.0.0.0"],
    )
    assert _listening(proxy.port) in ({"0.0.0.0"}, {"::"})
    assert _listening(proxy.internal_port) == {"127.0.0.1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_off_loopback_without_a_token_refuses_to_start(
    etcd: EtcdServer, meta_root: str, host: str
) -> None:
    done = run_proxy_command(
        "--upstream",
        "127.0.0.1:1",
        env={
            "MILVUS_AUTH_INTERNAL_HOST": host,
            "MILVUS_AUTH_ETCD_ENDPOINTS": etcd.endpoint,
            "MILVUS_AUTH_META_ROOT": meta_root,
            "MILVUS_AUTH_PORT": str(free_port()),
            "MILVUS_AUTH_INTERNAL_PORT": str(free_port()),
        },
    )
    assert done.returncode == 1
    assert f"--internal-host {host} is not a loopback address" in done.stderr
    assert "--insecure-internal-port" in done.stderr
    assert "Traceback" not in done.stderr


def test_insecure_internal_port_starts_with_a_warning(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        extra_args=["--internal-host", "0.0.0.0", "--insecure-internal-port"],
    )
    assert _listening(proxy.internal_port) in ({"0.0.0.0"}, {"::"})
    assert "WARNING milvus_auth.proxy.config insecure internal port 0.0.0.0:" in proxy.log()


def test_with_a_token_the_internal_port_may_listen_anywhere_without_warning(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        internal_token=TOKEN,
        extra_args=["--internal-host", "0.0.0.0"],
    )
    assert _listening(proxy.internal_port) in ({"0.0.0.0"}, {"::"})
    assert "insecure internal port" not in proxy.log()
