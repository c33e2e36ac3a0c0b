"""The design's test plan through a real proxy process, with pymilvus as the client.

With auth on: no credentials, wrong credentials and an unknown user fail with Milvus's code
and message; right credentials pass. With auth off: anything passes, credentials are ignored.
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

AUTH_CHECK_FAILURE = "auth check failure, please check username and password are correct"
GET_VERSION = "/milvus.proto.milvus.MilvusService/GetVersion"


def raw_call(proxy: ProxyProcess, metadata: list[tuple[str, str]]) -> grpc.RpcError | None:
    """One GetVersion through the proxy with exactly this metadata; the error, if any."""
    with grpc.insecure_channel(proxy.address) as channel:
        call = channel.unary_unary(GET_VERSION)
        try:
            call(milvus_pb2.GetVersionRequest().SerializeToString(), metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error
    return None


def token(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_root_connects_and_lists_collections(proxy: ProxyProcess) -> None:
    client = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD)
    try:
        assert isinstance(client.list_collections(), list)
        assert client.get_server_version()
    finally:
        client.close()


def test_token_form_is_accepted(proxy: ProxyProcess) -> None:
    client = MilvusClient(uri=proxy.uri, token=f"root:{ROOT_PASSWORD}")
    try:
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("user", "password"), [("root", "wrong-password"), ("nobody", ROOT_PASSWORD)]
)
def test_wrong_password_and_unknown_user_are_refused_alike(
    proxy: ProxyProcess, user: str, password: str
) -> None:
    with pytest.raises(MilvusException) as refused:
        MilvusClient(uri=proxy.uri, user=user, password=password)
    cause = refused.value.__cause__
    assert isinstance(cause, grpc.RpcError)
    assert cause.code() == grpc.StatusCode.UNAUTHENTICATED
    assert cause.details() == AUTH_CHECK_FAILURE


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "missing authorization in header"),
        ([("authorization", "%%%not-base64")], "invalid token format"),
        (
            [("authorization", token("no-colon-here"))],
            "auth check failure, please check api key is correct",
        ),
        ([("authorization", token(f"root:{ROOT_PASSWORD}x"))], AUTH_CHECK_FAILURE),
        ([("authorization", token(":"))], AUTH_CHECK_FAILURE),
    ],
)
def test_milvus_messages_for_bad_headers(
    proxy: ProxyProcess, metadata: list[tuple[str, str]], message: str
) -> None:
    error = raw_call(proxy, metadata)
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == message


def test_every_method_needs_credentials_health_included(proxy: ProxyProcess) -> None:
    with grpc.insecure_channel(proxy.address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as refused:
            check(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_bypass_header_grants_nothing(proxy: ProxyProcess) -> None:
    member = base64.b64encode(b"@@milvus-member@@").decode()
    error = raw_call(proxy, [("sourceid", member)])
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_auth_off_ignores_credentials(
    proxy_factory: ProxyFactory, etcd: EtcdServer, meta_root: str, milvus: MilvusLite
) -> None:
    proxy = proxy_factory(
        etcd_endpoint=etcd.endpoint,
        meta_root=meta_root,
        upstream=milvus.endpoint,
        auth_enabled=False,
        root_password=None,
    )
    assert raw_call(proxy, []) is None
    assert raw_call(proxy, [("authorization", "%%%not-base64")]) is None
    client = MilvusClient(uri=proxy.uri, user="nobody", password="whatever-it-is")
    try:
        assert isinstance(client.list_collections(), list)
    finally:
        client.close()
