"""The project's protos: generated code is current, loads beside pymilvus, speaks Milvus."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pool
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.internal import API_KEY_CACHE_SERVICE, INVALIDATE_API_KEY_CACHE_METHOD
from milvus_auth.protos import apikeys_pb2, apikeys_pb2_grpc, generate, proxy_pb2, proxy_pb2_grpc


def _without_tool_versions(text: str) -> str:
    # protoc stamps its own version into the output; a newer grpcio-tools alone is no change.
    text = re.sub(r"\d+,\n\s*\d+,\n\s*\d+,\n", "VERSION,\n", text)
    return re.sub(r"\b\d+\.\d+\.\d+\b", "VERSION", text)


def test_committed_code_matches_the_proto(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    assert sorted(fresh) == sorted(generate.OUTPUTS)
    for name, text in fresh.items():
        committed = (generate.PROTOS / name).read_text()
        assert _without_tool_versions(committed) == _without_tool_versions(text), (
            f"{name} is stale: run `make protos` and commit the result"
        )


def test_loads_beside_pymilvus_and_uses_its_common_types() -> None:
    pool = descriptor_pool.Default()
    request = pool.FindMessageTypeByName("milvus.proto.proxy.UpdateCredCacheRequest")
    assert request.fields_by_name["base"].message_type is common_pb2.MsgBase.DESCRIPTOR
    service = pool.FindServiceByName("milvus.proto.proxy.Proxy")
    assert {m.name: m.output_type for m in service.methods} == {
        "InvalidateCredentialCache": common_pb2.Status.DESCRIPTOR,
        "UpdateCredentialCache": common_pb2.Status.DESCRIPTOR,
        "RefreshPolicyInfoCache": common_pb2.Status.DESCRIPTOR,
    }
    # pymilvus's own messages still resolve: no duplicate or shadowed symbols.
    assert pool.FindMessageTypeByName("milvus.proto.milvus.CreateCredentialRequest") is (
        milvus_pb2.CreateCredentialRequest.DESCRIPTOR
    )
    assert hasattr(proxy_pb2_grpc, "ProxyStub")


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_milvus_field_numbers_decode() -> None:
    # Bytes as Milvus's RootCoord writes them, built by hand from the field numbers.
    base = bytes([2 << 3, 42])  # MsgBase.msgID = 42
    wire = _field(1, base) + _field(2, b"alice") + _field(3, b"f" * 64)
    update = proxy_pb2.UpdateCredCacheRequest.FromString(wire)
    assert (update.base.msgID, update.username, update.password) == (42, "alice", "f" * 64)

    invalidate = proxy_pb2.InvalidateCredCacheRequest.FromString(_field(2, b"bob"))
    assert invalidate.username == "bob"

    refresh = proxy_pb2.RefreshPolicyInfoCacheRequest.FromString(
        bytes([2 << 3, 5]) + _field(3, b"carol")
    )
    assert (refresh.opType, refresh.opKey) == (5, "carol")


def test_api_key_cache_service_is_named_as_the_callers_expect() -> None:
    pool = descriptor_pool.Default()
    service = pool.FindServiceByName(API_KEY_CACHE_SERVICE)
    method = service.FindMethodByName("InvalidateApiKeyCache")
    assert f"/{service.full_name}/{method.name}" == INVALIDATE_API_KEY_CACHE_METHOD
    assert method.input_type is apikeys_pb2.InvalidateApiKeyCacheRequest.DESCRIPTOR
    assert method.output_type is common_pb2.Status.DESCRIPTOR
    request = apikeys_pb2.InvalidateApiKeyCacheRequest.FromString(
        _field(1, bytes([2 << 3, 7])) + _field(2, b"0123456789abcdef")
    )
    assert (request.base.msgID, request.key_id) == (7, "0123456789abcdef")
    assert hasattr(apikeys_pb2_grpc, "ApiKeyCacheStub")
