"""Milvus's RBAC RPCs, served by the proxy itself against etcd (never forwarded).

`RbacService(RbacStores(policy, credentials, refresher))` answers the fourteen RPCs as a
Milvus 2.6 proxy and RootCoord do together: the same validations in the same order, the same
`common.Status` codes and reasons, the same records in etcd. Who may call them is the
privilege interceptor's business, not this module's. After a write, this proxy's policy cache
is reloaded from etcd (`PolicyRefresher.refresh`) before the call returns; other proxies learn
it from etcd, never by an RPC from here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.errors import MilvusError
from milvus_auth.proxy.authn.identity import current_identity
from milvus_auth.proxy.logsafe import shown_username
from milvus_auth.proxy.services.rbac_backup import BackupRpcs
from milvus_auth.proxy.services.rbac_errors import ProxyRefusal, Refused, rbac_status
from milvus_auth.proxy.services.rbac_grants import GrantRpcs
from milvus_auth.proxy.services.rbac_groups import GroupRpcs
from milvus_auth.proxy.services.rbac_roles import DEFAULT_MAX_ROLES, RbacStores, RoleRpcs
from milvus_auth.store import StoreError

__all__ = ["RbacService", "RbacStores", "rbac_handlers"]

log = logging.getLogger(__name__)

SERVICE = "milvus.proto.milvus.MilvusService"
_ErrorCode = common_pb2.ErrorCode
Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Any, str | None], Awaitable[Any]]


class RbacService:
    """The RBAC RPCs on one policy store, one credential store and this proxy's cache."""

    def __init__(self, stores: RbacStores, *, max_roles: int = DEFAULT_MAX_ROLES) -> None:
        self.roles = RoleRpcs(stores, max_roles=max_roles)
        self.grants = GrantRpcs(stores)
        self.groups = GroupRpcs(stores)
        self.backup = BackupRpcs(stores)


def _ignore_caller(call: Callable[[Any], Awaitable[Any]]) -> Behaviour:
    async def behaviour(request: Any, _: str | None) -> Any:
        return await call(request)

    return behaviour


# method -> (request type, response type (None: a Status), legacy failure code)
_METHODS: dict[str, tuple[Any, Any, int]] = {
    "CreateRole": (milvus_pb2.CreateRoleRequest, None, _ErrorCode.CreateRoleFailure),
    "DropRole": (milvus_pb2.DropRoleRequest, None, _ErrorCode.DropRoleFailure),
    "OperateUserRole": (
        milvus_pb2.OperateUserRoleRequest, None, _ErrorCode.OperateUserRoleFailure
    ),
    "SelectRole": (
        milvus_pb2.SelectRoleRequest, milvus_pb2.SelectRoleResponse, _ErrorCode.SelectRoleFailure
    ),
    "SelectUser": (
        milvus_pb2.SelectUserRequest, milvus_pb2.SelectUserResponse, _ErrorCode.SelectUserFailure
    ),
    "OperatePrivilege": (
        milvus_pb2.OperatePrivilegeRequest, None, _ErrorCode.OperatePrivilegeFailure
    ),
    "OperatePrivilegeV2": (
        milvus_pb2.OperatePrivilegeV2Request, None, _ErrorCode.OperatePrivilegeFailure
    ),
    "SelectGrant": (
        milvus_pb2.SelectGrantRequest, milvus_pb2.SelectGrantResponse,
        _ErrorCode.SelectGrantFailure,
    ),
    "CreatePrivilegeGroup": (
        milvus_pb2.CreatePrivilegeGroupRequest, None, _ErrorCode.CreatePrivilegeGroupFailure
    ),
    "DropPrivilegeGroup": (
        milvus_pb2.DropPrivilegeGroupRequest, None, _ErrorCode.DropPrivilegeGroupFailure
    ),
    "ListPrivilegeGroups": (
        milvus_pb2.ListPrivilegeGroupsRequest, milvus_pb2.ListPrivilegeGroupsResponse,
        _ErrorCode.ListPrivilegeGroupsFailure,
    ),
    "OperatePrivilegeGroup": (
        milvus_pb2.OperatePrivilegeGroupRequest, None, _ErrorCode.OperatePrivilegeGroupFailure
    ),
    "BackupRBAC": (
        milvus_pb2.BackupRBACMetaRequest, milvus_pb2.BackupRBACMetaResponse,
        _ErrorCode.UnexpectedError,
    ),
    "RestoreRBAC": (
        milvus_pb2.RestoreRBACMetaRequest, None, _ErrorCode.OperatePrivilegeFailure
    ),
}  # fmt: skip


def _behaviours(service: RbacService) -> dict[str, Behaviour]:
    roles, grants, groups, backup = service.roles, service.grants, service.groups, service.backup
    return {
        "CreateRole": _ignore_caller(roles.create_role),
        "DropRole": _ignore_caller(roles.drop_role),
        "OperateUserRole": _ignore_caller(roles.operate_user_role),
        "SelectRole": _ignore_caller(roles.select_role),
        "SelectUser": _ignore_caller(roles.select_user),
        "OperatePrivilege": grants.operate_privilege,
        "OperatePrivilegeV2": grants.operate_privilege_v2,
        "SelectGrant": _ignore_caller(grants.select_grant),
        "CreatePrivilegeGroup": _ignore_caller(groups.create_group),
        "DropPrivilegeGroup": _ignore_caller(groups.drop_group),
        "ListPrivilegeGroups": _ignore_caller(groups.list_groups),
        "OperatePrivilegeGroup": _ignore_caller(groups.operate_group),
        "BackupRBAC": _ignore_caller(backup.backup),
        "RestoreRBAC": _ignore_caller(backup.restore),
    }


def rbac_handlers(service: RbacService) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """gRPC handlers for the fourteen methods, keyed by full path, for the proxy's router."""
    behaviours = _behaviours(service)
    return {
        f"/{SERVICE}/{method}": grpc.unary_unary_rpc_method_handler(
            _rpc(method, behaviours[method], request_type, response_type, failure_code),
            response_serializer=_serialize,
        )
        for method, (request_type, response_type, failure_code) in _METHODS.items()
    }


def _rpc(
    method: str, behaviour: Behaviour, request_type: Any, response_type: Any, failure_code: int
) -> Any:
    """One RPC on the raw request bytes: a body that is no valid request is INVALID_ARGUMENT
    (grpc's own deserializer would answer INTERNAL); refusals and etcd errors become Milvus's
    failed status; writes are logged (method, caller, outcome; never a request body: a
    backup or restore carries hashes)."""

    async def handler(raw: bytes, context: Context) -> Any:
        identity = current_identity()
        caller = None if identity is None else identity.username
        try:
            request = request_type.FromString(raw)
        except DecodeError:
            log.warning("rbac %s caller=%s result=malformed", method, shown_username(caller))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method} request")
        try:
            response = await behaviour(request, caller)
        except ProxyRefusal as refusal:
            status = rbac_status(refusal.error, failure_code=None)
        except MilvusError as error:
            status = rbac_status(error, failure_code=failure_code)
        except StoreError as error:
            status = rbac_status(Refused(str(error)), failure_code=failure_code)
        else:
            if response_type is None:
                log.info("rbac %s caller=%s result=ok", method, shown_username(caller))
            return response
        log.warning(
            "rbac %s caller=%s result=refused code=%s", method, shown_username(caller), status.code
        )
        return status if response_type is None else response_type(status=status)

    return handler


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
