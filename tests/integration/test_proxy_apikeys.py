"""API keys through real proxy processes: real etcd, milvus-lite upstream, pymilvus with
`token=KEY`, keys issued and revoked with `milvus-auth apikeys` as an operator runs it.

What a key may do is observed through pymilvus (its user's roles apply), what it costs through
the proxy's metrics (no bcrypt, one etcd read per cold key), what leaves the proxy through a
recording upstream (never the key), and what is logged through the proxy's own log.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core.apikeys import API_KEY_FAILURE, ApiKeyRecord, generate_api_key, parse_api_key
from milvus_auth.core.internal import INTERNAL_TOKEN_METADATA, INVALIDATE_API_KEY_CACHE_METHOD
from milvus_auth.protos import apikeys_pb2
from milvus_auth.store import ApiKeyStore, EtcdSettings
from tests.harness.cli import run_cli
from tests.harness.milvus import MilvusLite
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD, ProxyFactory, ProxyProcess
from tests.harness.rbac import Rbac
from tests.harness.upstream import StubUpstream

PASSWORD = "Etl-Pass-1"
GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"
TOKEN = "internal-token-for-tests"


def _issue(etcd: EtcdServer, meta_root: str, *args: str) -> str:
    created = run_cli(["apikeys", "create", *args], etcd=etcd.endpoint, meta_root=meta_root)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _revoke(etcd: EtcdServer, meta_root: str, key_id: str) -> None:
    revoked = run_cli(["apikeys", "revoke", key_id], etcd=etcd.endpoint, meta_root=meta_root)
    assert revoked.returncode == 0, revoked.stderr


def _etl_key(proxy: ProxyProcess, etcd: EtcdServer, meta_root: str, *args: str) -> str:
    """Root creates the user `etl` through the proxy; `apikeys create` issues it a key."""
    root = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    try:
        root.create_user("etl", PASSWORD)
    finally:
        root.close()
    return _issue(etcd, meta_root, "--username", "etl", *args)


def _call(
    proxy: ProxyProcess, token: str | bytes, method: str = GET_VERSION
) -> tuple[grpc.StatusCode, str]:
    """One unary call with `authorization = base64(token)`; its code and details."""
    raw = token.encode() if isinstance(token, str) else token
    header = base64.b64encode(raw).decode()
    with grpc.insecure_channel(proxy.address) as channel:
        try:
            channel.unary_unary(method)(b"", metadata=[("authorization", header)], timeout=10)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def _wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def rbac(etcd_settings: EtcdSettings, meta_root: str) -> Rbac:
    return Rbac(etcd_settings, meta_root)


@pytest.fixture
def root(proxy: ProxyProcess) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    yield client
    client.close()


def test_a_key_is_its_user_and_the_users_roles_apply(
    proxy: ProxyProcess, root: MilvusClient, rbac: Rbac, etcd: EtcdServer, meta_root: str
) -> None:
    root.create_collection("books", dimension=2)
    root.create_user("etl", PASSWORD)
    root.create_role("reader")
    root.grant_privilege("reader", "Collection", "Query", "books")
    root.grant_privilege_v2("reader", "DescribeCollection", "books")
    root.grant_role("etl", "reader")
    key = _issue(etcd, meta_root, "--username", "etl", "--name", "nightly")
    bcrypts = proxy.bcrypt_runs()

    client = MilvusClient(uri=proxy.uri, token=key, timeout=10)
    try:
        assert client.has_collection("books")  # the seed's example call
        assert client.query("books", filter="id >= 0", limit=1) == []
        with pytest.raises(grpc.RpcError) as denied:
            client.drop_collection("books")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "permission deny to etl" in str(denied.value.details())
        # Calls that describe the caller see the key's user.
        described = client.describe_user("etl")
        assert described["user_name"] == "etl"
        assert list(described["roles"]) == ["reader"]
        with pytest.raises(grpc.RpcError) as other:
            client.describe_user("root")
        assert "PrivilegeSelectUser: permission deny to etl" in str(other.value.details())
        for _ in range(20):
            client.query("books", filter="id >= 0", limit=1)
    finally:
        client.close()
    assert proxy.bcrypt_runs() == bcrypts
    assert proxy.metric("api_key_etcd_reads_total", record="key") == 1
    assert proxy.metric("api_key_etcd_reads_total", record="user") == 1
    assert proxy.metric("api_key_auth_total", result="success", reason="cached") > 20
    assert proxy.metric("api_key_auth_total", result="failure") == 0


async def _write_record(etcd_settings: EtcdSettings, meta_root: str, record: ApiKeyRecord) -> None:
    async with ApiKeyStore(etcd_settings, meta_root) as keys:
        await keys.create(record)


def test_bad_keys_get_milvus_api_key_text_no_bcrypt_and_no_secret_in_the_log(
    proxy: ProxyProcess,
    root: MilvusClient,
    etcd: EtcdServer,
    etcd_settings: EtcdSettings,
    meta_root: str,
) -> None:
    root.create_user("etl", PASSWORD)
    root.create_user("gone", PASSWORD)
    good = _issue(etcd, meta_root, "--username", "etl")
    orphan = _issue(etcd, meta_root, "--username", "gone")
    root.drop_user("gone")
    expired = generate_api_key()
    now = int(time.time())
    asyncio.run(
        _write_record(
            etcd_settings,
            meta_root,
            ApiKeyRecord(expired.key_id, "etl", expired.secret_hash, now - 7200, now - 3600),
        )
    )
    parsed = parse_api_key(good)
    unknown = generate_api_key()
    bad: dict[str, str | bytes] = {
        "empty": "",
        "huge": "k" * 150_000,  # base64 stays under the proxy's 256 KiB header limit
        "non_ascii": "mak_\u00e9\u00e9\u00e9_" + "\u2603" * 40,
        "non_utf8": b"mak_\xff\xfe" + b"a" * 60,
        "underscores": "_" * 63,
        "underscored_secret": f"mak_{parsed.key_id}_" + "_" * 43,
        "prefix_only": "mak_",
        "wrong_secret": f"mak_{parsed.key_id}_{generate_api_key().secret}",
        "unknown_id": unknown.token,
        "expired": expired.token,
        "deleted_user": orphan,
    }
    bcrypts = proxy.bcrypt_runs()
    for name, token in bad.items():
        code, details = _call(proxy, token)
        assert (name, code, details) == (name, grpc.StatusCode.UNAUTHENTICATED, API_KEY_FAILURE)
    assert proxy.bcrypt_runs() == bcrypts
    assert _call(proxy, good) == (grpc.StatusCode.OK, "")  # still serving, the good key works
    reasons = {
        reason: proxy.metric("api_key_auth_total", result="failure", reason=reason)
        for reason in ("malformed", "wrong_secret", "unknown_key", "expired", "user_not_found")
    }
    assert reasons == {
        "malformed": 6,
        "wrong_secret": 2,
        "unknown_key": 1,
        "expired": 1,
        "user_not_found": 1,
    }
    log = proxy.log()
    for secret in (good, orphan, expired.token, unknown.token, parsed.secret, expired.secret):
        assert secret not in log
    assert f"key={unknown.key_id}" in log
    assert f"key={expired.key_id}" in log
    assert "reason=expired" in log


@pytest.mark.parametrize(
    ("upstream_token", "sent"),
    [
        # What Milvus's own proxy forwards for an API-key caller: `<user>:___`.
        (None, b"etl:___"),
        ("svc:Upstream-Pass", b"svc:Upstream-Pass"),
    ],
)
def test_the_key_never_goes_upstream(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    workdir: Path,
    upstream_token: str | None,
    sent: bytes,
) -> None:
    extra: list[str] = []
    if upstream_token is not None:
        token_file = workdir / "upstream-token"
        token_file.write_text(upstream_token + "\n")
        extra = ["--upstream-token-file", str(token_file)]
    with StubUpstream() as upstream:
        proxy = proxy_factory(
            etcd_endpoint=etcd.endpoint,
            meta_root=meta_root,
            upstream=upstream.endpoint,
            extra_args=extra,
        )
        key = _etl_key(proxy, etcd, meta_root)
        assert _call(proxy, key) == (grpc.StatusCode.OK, "")
        forwarded = [r for r in upstream.received if r.method == GET_VERSION][-1]
    assert forwarded.metadata["authorization"] == base64.b64encode(sent).decode()
    secret = parse_api_key(key).secret
    assert not any(
        secret in (value if isinstance(value, str) else value.decode(errors="replace"))
        or base64.b64encode(key.encode()).decode() == value
        for value in forwarded.metadata.values()
    )


def _invalidate(proxy: ProxyProcess, key_id: str, token: str | None = TOKEN) -> common_pb2.Status:
    metadata = () if token is None else ((INTERNAL_TOKEN_METADATA, token),)
    # By the path the operator calls (core/internal.py), not by the generated stub.
    with grpc.insecure_channel(proxy.internal_address) as channel:
        invalidate = channel.unary_unary(
            INVALIDATE_API_KEY_CACHE_METHOD,
            request_serializer=apikeys_pb2.InvalidateApiKeyCacheRequest.SerializeToString,
            response_deserializer=common_pb2.Status.FromString,
        )
        request = apikeys_pb2.InvalidateApiKeyCacheRequest(key_id=key_id)
        status: common_pb2.Status = invalidate(request, metadata=metadata, timeout=10)
        return status


@pytest.fixture
def guarded(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> Callable[[], ProxyProcess]:
    """Starts proxies on one etcd whose internal ports require the token."""
    return lambda: proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        internal_token=TOKEN,
    )


def test_the_internal_rpc_drops_a_key_at_once(
    guarded: Callable[[], ProxyProcess], etcd: EtcdServer, meta_root: str
) -> None:
    proxy = guarded()
    key = _etl_key(proxy, etcd, meta_root)
    key_id = parse_api_key(key).key_id
    for _ in range(3):
        assert _call(proxy, key)[0] == grpc.StatusCode.OK
    assert proxy.metric("api_key_etcd_reads_total", record="key") == 1

    with pytest.raises(grpc.RpcError) as unguarded:
        _invalidate(proxy, key_id, token=None)
    assert unguarded.value.code() == grpc.StatusCode.UNAUTHENTICATED
    refused = _invalidate(proxy, "../" + key_id)
    assert refused.code != 0
    assert "invalid API key id" in refused.reason
    assert _invalidate(proxy, key_id).code == 0
    assert _call(proxy, key)[0] == grpc.StatusCode.OK
    assert proxy.metric("api_key_etcd_reads_total", record="key") == 2
    assert f"api_key={key_id}" in proxy.log()


def test_two_proxies_share_keys_and_revocation_reaches_both_within_a_second(
    guarded: Callable[[], ProxyProcess], etcd: EtcdServer, meta_root: str
) -> None:
    # Nobody calls the internal ports here: the etcd watch alone revokes.
    proxies = [guarded() for _ in range(2)]
    minute_before = int(time.time()) // 60
    key = _etl_key(proxies[0], etcd, meta_root, "--name", "shared")
    key_id = parse_api_key(key).key_id
    for proxy in proxies:
        assert _call(proxy, key) == (grpc.StatusCode.OK, "")

    # Last use: stamped by one proxy for this minute, shown by `apikeys list`.
    def listed() -> str:
        result = run_cli(["apikeys", "list"], etcd=etcd.endpoint, meta_root=meta_root)
        assert result.returncode == 0, result.stderr
        return next(line for line in result.stdout.splitlines() if line.startswith(key_id))

    _wait_for(lambda: not listed().endswith("\t-"), timeout=15)
    line = listed()
    assert line.startswith(f"{key_id}\tshared\tetl\t")
    assert parse_api_key(key).secret not in line
    minutes = int(time.time()) // 60 - minute_before + 1
    time.sleep(1.5)  # a second proxy's late batch would land by now
    writes = sum(p.metric("api_key_last_used_writes_total", result="written") for p in proxies)
    assert 1 <= writes <= minutes

    _revoke(etcd, meta_root, key_id)
    revoked_at = time.monotonic()
    for proxy in proxies:
        _wait_for(lambda p=proxy: _call(p, key)[0] == grpc.StatusCode.UNAUTHENTICATED, timeout=5)
    elapsed = time.monotonic() - revoked_at
    assert elapsed < 3.0, f"revocation took {elapsed:.2f} s to reach both proxies"
    for proxy in proxies:
        assert _call(proxy, key) == (grpc.StatusCode.UNAUTHENTICATED, API_KEY_FAILURE)
        assert "InvalidateApiKeyCache" not in proxy.log()
        assert "api_key=" not in proxy.log()
