"""`milvus-auth proxy --workers 2`: the real supervisor and two worker processes.

Every check reaches each worker on purpose: channels are opened until /proc shows each worker
holding one (tests/harness/workers.py), and bcrypt runs, summed by the one metrics endpoint,
tell whether a worker's cache already held a password (each worker has its own cache).
"""

from __future__ import annotations

import base64
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core import CredentialRecord, cache_digest, hash_password
from milvus_auth.core.grants import Policy
from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, RECORD_REVISION_PROPERTY
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import CredentialStore, EtcdSettings
from tests.harness.processes import EtcdServer, free_port, wait_until
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess, run_proxy_command
from tests.harness.rbac import Rbac
from tests.harness.tls import make_tls_files
from tests.harness.upstream import StubUpstream
from tests.harness.workers import channels_on_every_worker

TOKEN = "workers-internal-token"
INTERNAL = ((INTERNAL_TOKEN_METADATA, TOKEN),)
GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
SEARCH = "/milvus.proto.milvus.MilvusService/Search"
ANN_PASSWORD = "Worker-Pass-1"


@pytest.fixture
def upstream() -> Iterator[StubUpstream]:
    with StubUpstream() as stub:
        yield stub


@pytest.fixture
def rbac(etcd_settings: EtcdSettings, meta_root: str) -> Rbac:
    policy = Rbac(etcd_settings, meta_root)
    for role in ("admin", "public", "reader"):
        policy.create_role(role)
    policy.create_user("ann", ANN_PASSWORD)
    policy.bind("ann", "reader")
    return policy


def _two_workers(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    upstream: StubUpstream,
    *args: str,
) -> ProxyProcess:
    return proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=upstream.endpoint,
        internal_token=TOKEN,
        workers=2,
        extra_args=list(args),
    )


def _header(user: str, password: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", base64.b64encode(f"{user}:{password}".encode()).decode()),)


def _code(channel: grpc.Channel, method: str, user: str, password: str) -> grpc.StatusCode:
    request = b""
    if method == SEARCH:
        request = milvus_pb2.SearchRequest(collection_name="books").SerializeToString()
    try:
        channel.unary_unary(method)(request, metadata=_header(user, password), timeout=10)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _internal(proxy: ProxyProcess) -> grpc.Channel:
    return grpc.insecure_channel(proxy.internal_address)


def _health(proxy: ProxyProcess) -> int:
    with _internal(proxy) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return -1
    return int(answer.status)


async def test_logins_and_every_cache_rpc_reach_both_workers(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    upstream: StubUpstream,
    store: CredentialStore,
    rbac: Rbac,
) -> None:
    proxy = _two_workers(proxy_factory, etcd, meta_root, upstream)
    with channels_on_every_worker(proxy.port, proxy.worker_pids()) as opened:
        first, second = opened.one_per_worker()
        # A login on either worker; each verifies root once with bcrypt, then has it cached.
        for channel in (first, second, first, second):
            assert _code(channel, GET_VERSION, "root", ROOT_PASSWORD) == grpc.StatusCode.OK
        assert proxy.bcrypt_runs() == 2

        # UpdateCredentialCache: Success only once both took it; then neither runs bcrypt.
        password = "Carol-Worker-1"
        revision = await store.create(CredentialRecord("carol", hash_password(password, 4)))
        with _internal(proxy) as channel:
            status = proxy_pb2_grpc.ProxyStub(channel).UpdateCredentialCache(
                proxy_pb2.UpdateCredCacheRequest(
                    base=common_pb2.MsgBase(properties={RECORD_REVISION_PROPERTY: str(revision)}),
                    username="carol",
                    password=cache_digest("carol", password),
                ),
                metadata=INTERNAL,
                timeout=10,
            )
        assert (status.error_code, status.code) == (0, 0)
        for channel in (first, second):
            assert _code(channel, GET_VERSION, "carol", password) == grpc.StatusCode.OK
        assert proxy.bcrypt_runs() == 2

        # InvalidateCredentialCache: both forget carol, so each verifies her once again.
        with _internal(proxy) as channel:
            status = proxy_pb2_grpc.ProxyStub(channel).InvalidateCredentialCache(
                proxy_pb2.InvalidateCredCacheRequest(username="carol"),
                metadata=INTERNAL,
                timeout=10,
            )
        assert (status.error_code, status.code) == (0, 0)
        for channel in (first, second, first, second):
            assert _code(channel, GET_VERSION, "carol", password) == grpc.StatusCode.OK
        assert proxy.bcrypt_runs() == 4

        # RefreshPolicyInfoCache: a grant sent only by RPC (etcd has none) reaches both.
        for channel in (first, second):
            assert _code(channel, SEARCH, "ann", ANN_PASSWORD) == grpc.StatusCode.PERMISSION_DENIED
        runs = proxy.bcrypt_runs()
        search = Policy("reader", "Collection-default.books", "PrivilegeSearch").to_json()
        for op, expected in ((3, grpc.StatusCode.OK), (4, grpc.StatusCode.PERMISSION_DENIED)):
            with _internal(proxy) as channel:
                status = proxy_pb2_grpc.ProxyStub(channel).RefreshPolicyInfoCache(
                    proxy_pb2.RefreshPolicyInfoCacheRequest(opType=op, opKey=search),
                    metadata=INTERNAL,
                    timeout=10,
                )
            assert (status.error_code, status.code) == (0, 0)
            for channel in (first, second):
                assert _code(channel, SEARCH, "ann", ANN_PASSWORD) == expected
        assert proxy.bcrypt_runs() == runs

        # A refusal is the workers' (the token is checked by each): no token, no change.
        with _internal(proxy) as channel, pytest.raises(grpc.RpcError) as refused:
            proxy_pb2_grpc.ProxyStub(channel).InvalidateCredentialCache(
                proxy_pb2.InvalidateCredCacheRequest(username="carol"), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for channel in (first, second):
            assert _code(channel, GET_VERSION, "carol", password) == grpc.StatusCode.OK
        assert proxy.bcrypt_runs() == runs
    assert proxy.metric("auth_total", result="success") >= 14
    assert proxy.metric("workers") == 2
    assert password not in proxy.log()
    assert TOKEN not in proxy.log()


def test_a_killed_worker_is_reported_restarted_and_counted(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, upstream: StubUpstream
) -> None:
    proxy = _two_workers(proxy_factory, etcd, meta_root, upstream)
    assert _health(proxy) == health_pb2.HealthCheckResponse.SERVING
    first, second = proxy.worker_pids()
    os.kill(second, signal.SIGKILL)
    # While it is down a cache RPC cannot reach every worker, so it is refused, not half-done.
    with _internal(proxy) as channel, pytest.raises(grpc.RpcError) as refused:
        proxy_pb2_grpc.ProxyStub(channel).InvalidateCredentialCache(
            proxy_pb2.InvalidateCredCacheRequest(username="root"), metadata=INTERNAL, timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    wait_until(
        lambda: _health(proxy) == health_pb2.HealthCheckResponse.NOT_SERVING,
        timeout=10,
        what="NOT_SERVING with a worker down",
    )
    wait_until(
        lambda: _health(proxy) == health_pb2.HealthCheckResponse.SERVING,
        timeout=60,
        what="SERVING again after the restart",
    )
    pids = proxy.worker_pids()
    assert first in pids
    assert second not in pids
    assert len(pids) == 2
    assert proxy.metric("worker_exits_total") == 1
    assert proxy.metric("worker_restarts_total") == 1
    log = proxy.log()
    assert f"worker 1 (pid {second}) died" in log
    assert "signal SIGKILL" in log
    assert "worker 1 restarted" in log
    with channels_on_every_worker(proxy.port, proxy.worker_pids()) as opened:
        for channel in opened.one_per_worker():
            assert _code(channel, GET_VERSION, "root", ROOT_PASSWORD) == grpc.StatusCode.OK


def test_failed_login_limits_hold_across_workers(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    upstream: StubUpstream,
    rbac: Rbac,
) -> None:
    # 4 failures per (user, address) in all, hardly refilled: each worker may spend 2.
    limits = {
        "--rate-limit-user-burst": "4",
        "--rate-limit-user-per-second": "0.001",
        "--rate-limit-user-total-burst": "8",
        "--rate-limit-user-total-per-second": "0.002",
        "--rate-limit-peer-burst": "1000",
    }
    proxy = _two_workers(
        proxy_factory,
        etcd,
        meta_root,
        upstream,
        *(item for pair in limits.items() for item in pair),
    )
    with channels_on_every_worker(proxy.port, proxy.worker_pids(), each=2) as opened:
        codes = {
            _code(channel, GET_VERSION, "ann", "wrong-password")
            for _ in range(5)
            for _, channel in opened.channels
        }
    assert codes == {grpc.StatusCode.UNAUTHENTICATED}
    # Two workers with the whole limit each would have run 8.
    assert proxy.bcrypt_runs() == 4
    assert proxy.metric("auth_total", result="failure", reason="rate_limited") >= 16


def test_sigterm_drains_both_workers_and_exits_0(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, upstream: StubUpstream
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=upstream.endpoint,
        auth_enabled=False,
        root_password=None,
        workers=2,
    )
    pids = proxy.worker_pids()
    results: list[bytes] = []
    with channels_on_every_worker(proxy.port, proxy.worker_pids()) as opened:
        slow_calls = [channel.unary_unary("/test.Stub/Slow") for channel in opened.one_per_worker()]
        threads = [
            threading.Thread(target=lambda call=call: results.append(call(b"1.0", timeout=10)))
            for call in slow_calls
        ]
        for thread in threads:
            thread.start()
        threading.Event().wait(0.3)
        assert proxy.process is not None
        proxy.process.terminate()
        for thread in threads:
            thread.join(10)
        assert results == [b"slept", b"slept"]
    # Generous: two interpreters exit on two cores shared with the rest of the suite.
    assert proxy.process.wait(60) == 0, proxy.log()
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert "proxy stopped" in proxy.log()


def test_a_port_in_use_refuses_to_start_with_workers() -> None:
    with StubUpstream() as taken:
        done = run_proxy_command(
            "--upstream",
            "127.0.0.1:1",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(taken.port),
            "--internal-port",
            str(free_port()),
        )
    assert done.returncode == 1
    assert f"cannot start: 127.0.0.1:{taken.port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_workers_serve_internal_tls_and_write_an_access_log_each(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    upstream: StubUpstream,
    rbac: Rbac,
    tmp_path: Path,
) -> None:
    """The supervisor's internal port speaks the configured TLS (the workers' private sockets
    stay plain), and each worker writes its own rotating access log file."""
    tls = make_tls_files(tmp_path / "tls")
    access = tmp_path / "access.log"
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=upstream.endpoint,
        internal_token=TOKEN,
        workers=2,
        internal_tls=tls,
        extra_args=["--access-log", str(access)],
    )
    anchors = grpc.ssl_channel_credentials(root_certificates=tls.ca.read_bytes())
    with grpc.secure_channel(proxy.internal_address, anchors) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        status = proxy_pb2_grpc.ProxyStub(channel).InvalidateCredentialCache(
            proxy_pb2.InvalidateCredCacheRequest(username="ann"), metadata=INTERNAL, timeout=10
        )
        assert (status.error_code, status.code) == (0, 0)
    assert _health(proxy) == -1  # plain text is refused on a TLS port
    with channels_on_every_worker(proxy.port, proxy.worker_pids()) as opened:
        for channel in opened.one_per_worker():
            assert _code(channel, GET_VERSION, "ann", ANN_PASSWORD) == grpc.StatusCode.OK
    files = [access.with_name(f"access.log.worker{index}") for index in range(2)]
    wait_until(
        lambda: all(path.exists() and path.read_text() for path in files),
        timeout=10,
        what="an access log line in each worker's file",
    )
    for path in files:
        assert '"user":"ann"' in path.read_text()
        assert ANN_PASSWORD not in path.read_text()
    assert not access.exists()
