"""Hostile input to the RBAC RPCs of a real proxy process (property-based, hypothesis).

Role, user, object and group names of any text (NUL, control characters, non-ASCII, up to
64 KiB), and request bodies that are no valid protobuf: every answer is a clean Milvus status
or INVALID_ARGUMENT, never INTERNAL, never a crash, and nothing is written for a refused name.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus.grpc_gen import milvus_pb2

from milvus_auth.proxy.authz.objects import MAX_NAME_BYTES
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess

SERVICE = "/milvus.proto.milvus.MilvusService/"
_TOKEN = base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
_CHARACTERS = st.characters(blacklist_categories=("Cs",))
NAMES = st.one_of(
    st.text(_CHARACTERS, max_size=300),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "\x00", "é", "$", " "]),
              st.integers(256, 65_536)),
    st.sampled_from(["", " ", "*", "admin", "public", "a\x00b", "root", "a" * 255, "_"]),
)  # fmt: skip
_HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def channel(proxy: ProxyProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        proxy.address, options=[("grpc.max_send_message_length", 1 << 20)]
    ) as opened:
        yield opened


def _call(channel: grpc.Channel, method: str, body: bytes) -> bytes | None:
    """The raw response, or None for INVALID_ARGUMENT (a malformed body); any other gRPC
    error fails the test."""
    try:
        answer: bytes = channel.unary_unary(SERVICE + method)(
            body, metadata=[("authorization", _TOKEN)], timeout=10
        )
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        if code != grpc.StatusCode.INVALID_ARGUMENT:
            pytest.fail(f"{method}: {code} {error.details()}")  # type: ignore[attr-defined]
        return None
    return answer


def _requests(name: str) -> list[tuple[str, object]]:
    role = milvus_pb2.RoleEntity(name=name)
    grantor = milvus_pb2.GrantorEntity(
        user=milvus_pb2.UserEntity(name=name), privilege=milvus_pb2.PrivilegeEntity(name=name)
    )
    entity = milvus_pb2.GrantEntity(
        role=role, object=milvus_pb2.ObjectEntity(name=name), object_name=name,
        db_name=name, grantor=grantor,
    )  # fmt: skip
    return [
        ("CreateRole", milvus_pb2.CreateRoleRequest(entity=role)),
        ("DropRole", milvus_pb2.DropRoleRequest(role_name=name, force_drop=True)),
        ("OperateUserRole", milvus_pb2.OperateUserRoleRequest(username=name, role_name=name)),
        ("SelectRole", milvus_pb2.SelectRoleRequest(role=role, include_user_info=True)),
        ("SelectUser", milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name=name))),
        ("OperatePrivilege", milvus_pb2.OperatePrivilegeRequest(entity=entity)),
        ("OperatePrivilegeV2", milvus_pb2.OperatePrivilegeV2Request(
            role=role, grantor=grantor, db_name=name, collection_name=name)),
        ("SelectGrant", milvus_pb2.SelectGrantRequest(entity=entity)),
        ("CreatePrivilegeGroup", milvus_pb2.CreatePrivilegeGroupRequest(group_name=name)),
        ("OperatePrivilegeGroup", milvus_pb2.OperatePrivilegeGroupRequest(
            group_name=name, privileges=[milvus_pb2.PrivilegeEntity(name=name)])),
        ("DropPrivilegeGroup", milvus_pb2.DropPrivilegeGroupRequest(group_name=name)),
    ]  # fmt: skip


@_HYPOTHESIS
@given(name=NAMES)
def test_any_name_gets_a_clean_status(channel: grpc.Channel, name: str) -> None:
    for method, request in _requests(name):
        raw = _call(channel, method, request.SerializeToString())  # type: ignore[attr-defined]
        if raw is None:
            # The privilege check refuses a name no Milvus object can have before any service.
            assert len(name) > MAX_NAME_BYTES or "\x00" in name, method
            continue
        response = (
            milvus_pb2.SelectRoleResponse.FromString(raw).status if method == "SelectRole"
            else milvus_pb2.SelectUserResponse.FromString(raw).status if method == "SelectUser"
            else milvus_pb2.SelectGrantResponse.FromString(raw).status
            if method == "SelectGrant" else milvus_pb2.common__pb2.Status.FromString(raw)
        )  # fmt: skip
        assert response.code in (0, 1100, 1401, 1402, 65535), (method, response)
        if response.code:
            assert response.reason
    listed = _call(channel, "SelectRole", milvus_pb2.SelectRoleRequest().SerializeToString())
    roles = milvus_pb2.SelectRoleResponse.FromString(listed)
    # CreateRole then DropRole(force): whatever was created is gone again.
    assert sorted(r.role.name for r in roles.results) == ["admin", "public"]


@_HYPOTHESIS
@given(body=st.binary(max_size=2_000))
def test_any_body_is_a_status_or_invalid_argument(channel: grpc.Channel, body: bytes) -> None:
    for method in ("CreateRole", "OperatePrivilege", "SelectGrant", "RestoreRBAC"):
        _call(channel, method, body)


def test_truncated_request_is_invalid_argument(channel: grpc.Channel) -> None:
    body = milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name="r1")).SerializeToString()
    create = channel.unary_unary(SERVICE + "CreateRole")
    with pytest.raises(grpc.RpcError) as refused:
        create(body[:-1], metadata=[("authorization", _TOKEN)], timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    # The privilege check reads every request's structure first and says what is wrong.
    assert refused.value.details().startswith("malformed")  # type: ignore[attr-defined]
    assert _call(channel, "CreateRole", body) is not None  # the whole body is fine
