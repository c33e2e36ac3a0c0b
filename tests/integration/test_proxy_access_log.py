"""The access log of a real proxy process: one JSON line per call, never a secret, sampling,
rotation, and failed logins under the failed-login bound."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.store import EtcdSettings
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer, wait_until
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess
from tests.harness.rbac import Rbac

PASSWORD = "Alice-Pass-42"
GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
QUERY = "/milvus.proto.milvus.MilvusService/Query"
FIELDS = {
    "time",
    "event",
    "peer",
    "user",
    "proof",
    "method",
    "database",
    "collection",
    "decision",
    "code",
    "latency_ms",
    "request_bytes",
    "response_bytes",
}


def entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


LoggedProxy = Callable[..., tuple[ProxyProcess, Path]]


@pytest.fixture
def logged_proxy(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
    tmp_path: Path,
) -> LoggedProxy:
    """`logged_proxy(*flags)`: a proxy writing its access log to `tmp_path/access.log`."""

    def start(*flags: str) -> tuple[ProxyProcess, Path]:
        log = tmp_path / "access.log"
        proxy = proxy_factory(
            etcd_endpoint=etcd.endpoint,
            meta_root=meta_root,
            upstream=milvus.endpoint,
            extra_args=["--access-log", str(log), *flags],
        )
        return proxy, log

    return start


@pytest.fixture
def alice(etcd_settings: EtcdSettings, meta_root: str) -> None:
    """alice may query the collection `logged` only (and `public` describes collections)."""
    rbac = Rbac(etcd_settings, meta_root)
    for builtin in ("admin", "public"):
        rbac.create_role(builtin)
    rbac.create_role("reader")
    rbac.grant_v1("reader", "Collection", "logged", "Query")
    rbac.create_user("alice", PASSWORD)
    rbac.bind("alice", "reader")


def test_one_line_per_call_with_who_what_decision_and_outcome(
    logged_proxy: LoggedProxy, tmp_path: Path, alice: None
) -> None:
    proxy, log = logged_proxy()
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    user = MilvusClient(uri=proxy.uri, user="alice", password=PASSWORD, timeout=10)
    try:
        if "logged" in root.list_collections():
            root.drop_collection("logged")
        root.create_collection("logged", dimension=2)
        root.insert("logged", [{"id": 1, "vector": [0.1, 0.2]}])
        assert user.query("logged", filter="id >= 0", output_fields=["id"])
        with pytest.raises((MilvusException, grpc.RpcError)):
            user.drop_collection("logged")  # alice may not
        root.drop_collection("logged")
    finally:
        root.close()
        user.close()
    with pytest.raises(MilvusException):
        MilvusClient(uri=proxy.uri, user="alice", password="Wrong-Guess-7", timeout=10)
    wait_until(
        lambda: any(e["code"] == "UNAUTHENTICATED" for e in entries(log)),
        timeout=10,
        what="the failed login",
    )
    lines = entries(log)
    assert all(set(line) == FIELDS for line in lines)
    assert all(
        line["event"] == "call" and line["peer"].startswith("ipv4:127.0.0.1:") for line in lines
    )
    query = next(line for line in lines if line["method"] == QUERY)
    assert query["user"] == "alice"
    assert query["proof"] == "password"
    assert query["database"] == "default"
    assert query["collection"] == "logged"
    assert query["decision"] == "allowed"
    assert query["code"] == "OK"
    assert query["request_bytes"] > 0
    assert query["response_bytes"] > 0
    assert query["latency_ms"] > 0
    denied = next(line for line in lines if line["code"] == "PERMISSION_DENIED")
    assert denied["user"] == "alice"
    assert denied["decision"] == "denied"
    assert denied["method"].endswith("/DropCollection")
    assert denied["collection"] == "logged"
    assert denied["response_bytes"] is None
    root_insert = next(line for line in lines if line["method"].endswith("/Insert"))
    assert (root_insert["user"], root_insert["decision"]) == ("root", "bypass")
    failed = next(line for line in lines if line["code"] == "UNAUTHENTICATED")
    assert (failed["user"], failed["proof"], failed["decision"]) == ("alice", "none", None)
    # Never a secret: no password, no authorization header value, in any line.
    text = log.read_text()
    for secret in (PASSWORD, "Wrong-Guess-7"):  # root's `Milvus` is in every method path
        assert secret not in text
        assert base64.b64encode(f"alice:{secret}".encode()).decode() not in text
    assert base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode() not in text
    # And the process log (stderr) does not carry the access lines.
    assert '"event":"call"' not in proxy.log()


def _calls(proxy: ProxyProcess, count: int, user: str, password: str) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with grpc.insecure_channel(proxy.address) as channel:
        method = channel.unary_unary(GET_VERSION)
        for _ in range(count):
            with contextlib.suppress(grpc.RpcError):
                method(b"", metadata=(("authorization", token),), timeout=5)


def test_sampling_keeps_every_failure_and_the_failed_login_bound_applies(
    logged_proxy: LoggedProxy, tmp_path: Path
) -> None:
    proxy, log = logged_proxy(
        "--access-log-sample-rate",
        "0",
        "--failed-login-log-burst",
        "2",
        "--failed-login-log-interval",
        "1",
    )
    _calls(proxy, 50, "root", ROOT_PASSWORD)
    _calls(proxy, 40, "mallory", "Guess-1")
    wait_until(
        lambda: any(e["event"] == "suppressed" for e in entries(log)), timeout=15, what="a summary"
    )
    lines = entries(log)
    assert not [line for line in lines if line.get("code") == "OK"]  # successes sampled at 0
    failures = [line for line in lines if line["event"] == "call"]
    summaries = [line for line in lines if line["event"] == "suppressed"]
    assert failures
    assert all(line["code"] == "UNAUTHENTICATED" for line in failures)
    assert len(failures) < 40
    wait_until(
        lambda: (
            sum(1 for e in entries(log) if e["event"] == "call")
            + sum(e["count"] for e in entries(log) if e["event"] == "suppressed")
            == 40
        ),
        timeout=15,
        what="every failed login accounted for",
    )
    assert {(line["user"], line["peer"]) for line in summaries} == {("mallory", "127.0.0.1")}
    assert proxy.metric("auth_total", result="failure") == 40


def test_the_file_rotates(logged_proxy: LoggedProxy, tmp_path: Path) -> None:
    proxy, _ = logged_proxy(
        "--access-log-max-bytes",
        "2000",
        "--access-log-backups",
        "2",
    )
    _calls(proxy, 100, "root", ROOT_PASSWORD)
    # Lines are buffered and written out every second.
    wait_until(
        lambda: (tmp_path / "access.log").stat().st_size > 0,
        timeout=10,
        what="the buffered lines",
    )
    rotated = sorted(path.name for path in tmp_path.glob("access.log*"))
    assert rotated == ["access.log", "access.log.1", "access.log.2"]
    assert all(path.stat().st_size <= 2000 for path in tmp_path.glob("access.log*"))
    assert all(
        line["code"] == "OK" for path in tmp_path.glob("access.log*") for line in entries(path)
    )
