"""The protobuf field scanner agrees with protobuf's own decoder, and copies no payload."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from milvus_auth.core.wire import (
    WireError,
    check_well_formed,
    nested_string_field,
    repeated_string_field,
    string_field,
)

names = st.text(max_size=40)


@given(db=names, collection=names, partition=names, rows=st.integers(0, 2**32 - 1))
def test_insert_names_match_the_decoder(
    db: str, collection: str, partition: str, rows: int
) -> None:
    request = milvus_pb2.InsertRequest(
        db_name=db, collection_name=collection, partition_name=partition, num_rows=rows
    )
    request.fields_data.add(field_name="v", type=schema_pb2.DataType.Int64).scalars.long_data.data[
        :
    ] = [1, 2, 3]
    data = request.SerializeToString()
    assert string_field(data, 3) == collection
    assert string_field(data, 2) == db
    assert string_field(data, 4) == partition


@given(user=names)
def test_nested_entity_name_matches_the_decoder(user: str) -> None:
    request = milvus_pb2.SelectUserRequest(include_role_info=True)
    request.user.name = user
    assert nested_string_field(request.SerializeToString(), 2) == user


@given(collections=st.lists(names, max_size=5))
def test_repeated_names_match_the_decoder(collections: list[str]) -> None:
    request = milvus_pb2.FlushRequest(db_name="d", collection_names=collections)
    assert repeated_string_field(request.SerializeToString(), 3) == tuple(collections)


def test_last_occurrence_wins_and_embedded_messages_merge() -> None:
    first = milvus_pb2.SelectUserRequest()
    first.user.name = "alice"
    second = milvus_pb2.SelectUserRequest()
    second.user.name = "root"
    both = first.SerializeToString() + second.SerializeToString()
    assert milvus_pb2.SelectUserRequest.FromString(both).user.name == "root"
    assert nested_string_field(both, 2) == "root"
    twice = (
        milvus_pb2.DropCollectionRequest(collection_name="a").SerializeToString()
        + milvus_pb2.DropCollectionRequest(collection_name="b").SerializeToString()
    )
    assert string_field(twice, 3) == "b"


def test_absent_and_wrong_wire_type_read_as_empty() -> None:
    assert string_field(b"", 3) == ""
    # Field 3 as a varint: the decoder keeps it as an unknown field; the name stays empty.
    data = bytes([3 << 3 | 0, 5])
    assert milvus_pb2.DropCollectionRequest.FromString(data).collection_name == ""
    assert string_field(data, 3) == ""


@pytest.mark.parametrize(
    "data",
    [
        bytes([3 << 3 | 2, 10, 65]),  # length past the end
        bytes([3 << 3 | 2]),  # length missing
        bytes([0x80] * 11),  # varint too long
        bytes([3 << 3 | 3]),  # group
        bytes([0 << 3 | 2, 0]),  # field number 0
        bytes([3 << 3 | 1, 1, 2]),  # truncated fixed64
    ],
)
def test_malformed_messages_are_errors(data: bytes) -> None:
    with pytest.raises(WireError):
        string_field(data, 3)
    with pytest.raises(WireError):
        check_well_formed(data)


def test_a_name_that_is_not_utf8_is_an_error() -> None:
    data = bytes([3 << 3 | 2, 2, 0xFF, 0xFE])
    check_well_formed(data)  # sound structure; the string itself is what is wrong
    with pytest.raises(WireError, match="UTF-8"):
        string_field(data, 3)


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_disagree_with_the_decoder(data: bytes) -> None:
    try:
        name = string_field(data, 3)
    except WireError:
        name = None
    try:
        decoded = milvus_pb2.DropCollectionRequest.FromString(data).collection_name
    except DecodeError:
        decoded = None
    # Where both read it they agree. (The decoder also refuses requests whose *other* fields
    # are broken, e.g. a non-UTF-8 db_name; the upstream refuses those itself.)
    if name is not None and decoded is not None:
        assert name == decoded


def test_a_16_mib_insert_is_scanned_without_copying_its_payload() -> None:
    request = milvus_pb2.InsertRequest(collection_name="docs", num_rows=1)
    request.fields_data.add(field_name="blob").vectors.binary_vector = b"\0" * (16 << 20)
    data = request.SerializeToString()
    assert len(data) > 16 << 20
    tracemalloc.start()
    started = time.perf_counter()
    name = string_field(data, 3)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert name == "docs"
    assert peak < 64 << 10, f"{peak} bytes allocated"
    assert elapsed < 1.0  # generous; the benchmark measures it properly
