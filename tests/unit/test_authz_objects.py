"""Object names read from request bytes: exact on good input, a clean refusal on bad input."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from milvus_auth.core.privilege_table import METHOD_PRIVILEGES
from milvus_auth.proxy.authz.objects import MAX_NAME_BYTES, ObjectReader
from milvus_auth.proxy.errors import MalformedRequest

SERVICE = "/milvus.proto.milvus.MilvusService/"


def _reader(method: str) -> ObjectReader:
    return ObjectReader.for_rule(METHOD_PRIVILEGES[SERVICE + method])


def test_names_by_field_number_and_message_field_one() -> None:
    insert = milvus_pb2.InsertRequest(db_name="d", collection_name="books").SerializeToString()
    assert _reader("Insert").name(insert) == "books"
    select = milvus_pb2.SelectUserRequest()
    select.user.name = "ann"
    assert _reader("SelectUser").name(select.SerializeToString()) == "ann"
    assert _reader("SelectUser").name(milvus_pb2.SelectUserRequest().SerializeToString()) == "*"
    assert _reader("Insert").name(b"") == ""  # an empty scalar stays "" (not `*`)
    flush = milvus_pb2.FlushRequest(collection_names=["a", "b"]).SerializeToString()
    assert _reader("Flush").names(flush) == ("a", "b")
    grant = milvus_pb2.SelectGrantRequest()
    grant.entity.role.name = "reader"
    assert _reader("SelectGrant").granted_role(grant.SerializeToString()) == "reader"
    assert _reader("CreateCollection").name(b"\x12\x01d") == "*"


def test_a_16_mib_insert_is_neither_parsed_nor_copied() -> None:
    column = schema_pb2.FieldData(field_name="blob")
    column.scalars.bytes_data.data.append(b"x" * (16 << 20))
    request = milvus_pb2.InsertRequest(collection_name="books", fields_data=[column])
    data = request.SerializeToString()
    reader = _reader("Insert")
    tracemalloc.start()
    try:
        assert reader.name(data) == "books"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize(
    "data",
    [
        b"\x1a\x05boo",  # truncated name
        b"\x1a\x02\xff\xfe",  # not UTF-8
        b"\x1a\x03a\x00b",  # NUL
        b"\x1a" + bytes([0x80, 0x80, 0x04]) + b"x" * 65536,  # a 64 KiB name
        b"\xff",  # truncated tag
        b"\x1f",  # wire type 7
    ],
)
def test_malformed_requests_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedRequest):
        _reader("Insert").name(data)
    assert MalformedRequest.code.name == "INVALID_ARGUMENT"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(sorted(METHOD_PRIVILEGES)))
def test_any_bytes_give_a_name_or_a_clean_refusal(data: bytes, method: str) -> None:
    reader = ObjectReader.for_rule(METHOD_PRIVILEGES[method])
    try:
        name = reader.name(data)
        names = reader.names(data)
        reader.granted_role(data)
    except MalformedRequest:
        return
    for found in (name, *names):
        assert "\x00" not in found
        assert len(found) <= MAX_NAME_BYTES


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300).filter(lambda t: "\x00" not in t))
def test_any_valid_name_reads_back(name: str) -> None:
    data = milvus_pb2.SearchRequest(collection_name=name).SerializeToString()
    assert _reader("Search").name(data) == name
