"""Raw gRPC calls to a proxy as a given user: only the status code matters to these tests."""

from __future__ import annotations

import base64

import grpc
from pymilvus.grpc_gen import milvus_pb2

from tests.harness.proxy import ProxyProcess

SEARCH = "/milvus.proto.milvus.MilvusService/Search"


def search_code(proxy: ProxyProcess, user: str, password: str, collection: str) -> grpc.StatusCode:
    """One Search on `collection`; the gRPC code it ended with (OK also when milvus-lite
    answered a failed status: the call was allowed through)."""
    request = milvus_pb2.SearchRequest(collection_name=collection).SerializeToString()
    return raw_code(proxy, user, password, SEARCH, request)


def raw_code(
    proxy: ProxyProcess, user: str, password: str, method: str, request: bytes = b""
) -> grpc.StatusCode:
    """One unary call of `method` with these credentials; the gRPC code it ended with."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with grpc.insecure_channel(proxy.address) as channel:
        try:
            channel.unary_unary(method)(request, metadata=[("authorization", token)], timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK
