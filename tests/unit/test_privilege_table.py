"""The generated method → privilege table: current with pymilvus's protos, and Milvus's content."""

from __future__ import annotations

import pytest
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.method_privilege import MethodPrivilege
from milvus_auth.core.privilege_table import (
    METHOD_PRIVILEGES,
    OBJECT_PRIVILEGE_NAMES,
    OBJECT_TYPE_NAMES,
    UNCHECKED_METHODS,
)
from milvus_auth.protos import generate_privileges

SERVICE = "/milvus.proto.milvus.MilvusService/"


def test_committed_table_is_what_the_generator_writes() -> None:
    committed = generate_privileges.TABLE.read_text()
    assert committed == generate_privileges.render(), (
        "privilege_table.py is stale: run `make privileges` and commit the result"
    )


def test_every_method_is_either_checked_or_unchecked() -> None:
    service = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
    paths = {SERVICE + method.name for method in service.methods}
    assert set(METHOD_PRIVILEGES) | UNCHECKED_METHODS == paths
    assert not set(METHOD_PRIVILEGES) & UNCHECKED_METHODS


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (
            "Search",
            MethodPrivilege("Collection", "Search", 3, 0, "milvus.proto.milvus.SearchRequest"),
        ),
        (
            "Insert",
            MethodPrivilege("Collection", "Insert", 3, 0, "milvus.proto.milvus.InsertRequest"),
        ),
        ("Flush", MethodPrivilege("Collection", "Flush", 0, 3, "milvus.proto.milvus.FlushRequest")),
        (
            "LoadBalance",
            MethodPrivilege(
                "Collection", "LoadBalance", 5, 0, "milvus.proto.milvus.LoadBalanceRequest"
            ),
        ),
        (
            "DropCollection",
            MethodPrivilege(
                "Global", "DropCollection", -1, 0, "milvus.proto.milvus.DropCollectionRequest"
            ),
        ),
        (
            "CreateRole",
            MethodPrivilege(
                "Global", "CreateOwnership", -1, 0, "milvus.proto.milvus.CreateRoleRequest"
            ),
        ),
        (
            "OperatePrivilegeV2",
            MethodPrivilege(
                "Global", "ManageOwnership", -1, 0, "milvus.proto.milvus.OperatePrivilegeV2Request"
            ),
        ),
        (
            "ListCredUsers",
            MethodPrivilege(
                "Global", "SelectOwnership", -1, 0, "milvus.proto.milvus.ListCredUsersRequest"
            ),
        ),
        (
            "UpdateCredential",
            MethodPrivilege(
                "User", "UpdateUser", 2, 0, "milvus.proto.milvus.UpdateCredentialRequest"
            ),
        ),
        (
            "SelectUser",
            MethodPrivilege("User", "SelectUser", 2, 0, "milvus.proto.milvus.SelectUserRequest"),
        ),
    ],
)
def test_rows_match_milvus_protos(method: str, expected: MethodPrivilege) -> None:
    assert METHOD_PRIVILEGES[SERVICE + method] == expected


@pytest.mark.parametrize(
    "method",
    ["Connect", "HasCollection", "ShowCollections", "ListDatabases", "GetVersion", "CheckHealth"],
)
def test_exempt_methods_have_no_row(method: str) -> None:
    assert SERVICE + method in UNCHECKED_METHODS


def test_object_name_fields_exist_in_their_requests() -> None:
    # The interceptor will read these field numbers without decoding the whole request.
    for path, row in METHOD_PRIVILEGES.items():
        request = milvus_pb2.DESCRIPTOR.pool.FindMessageTypeByName(row.request_type)
        numbers = {field.number for field in request.fields}
        for index in (row.object_name_index, row.object_name_indexs):
            assert index <= 0 or index in numbers, path


def test_enum_names_are_pymilvus_enums() -> None:
    assert tuple(common_pb2.ObjectType.keys()) == OBJECT_TYPE_NAMES
    assert tuple(common_pb2.ObjectPrivilege.keys()) == OBJECT_PRIVILEGE_NAMES
    assert {row.object_type for row in METHOD_PRIVILEGES.values()} == set(OBJECT_TYPE_NAMES)
