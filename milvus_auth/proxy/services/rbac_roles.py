"""CreateRole, DropRole, OperateUserRole, SelectRole and SelectUser, as Milvus 2.6 serves them.

Each RPC runs Milvus's proxy validation (`proxy_stage`), then RootCoord's checks against etcd,
then the write, then a full reload of this proxy's policy cache. Names are validated trimmed
but stored as sent, as Milvus does. Milvus's `proxy.maxRoleNum` (10, counting `admin` and
`public`) caps the roles; like RootCoord, the proxy creates those two at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.credentials import validate_username
from milvus_auth.core.errors import RoleExists, RoleHasGrants, RoleNotFound
from milvus_auth.core.roles import DEFAULT_ROLES, ensure_managed, validate_role_name
from milvus_auth.proxy.authz import PolicyRefresher
from milvus_auth.proxy.services.rbac_errors import Refused, invalid, proxy_stage
from milvus_auth.store import CredentialStore, PolicyStore

DEFAULT_MAX_ROLES = 10  # Milvus's proxy.maxRoleNum
ROLE_NOT_FOUND = "not found the role, maybe the role isn't existed or internal system error"
USER_NOT_FOUND = "not found the user, maybe the user isn't existed or internal system error"
_ADD, _REMOVE = milvus_pb2.AddUserToRole, milvus_pb2.RemoveUserFromRole


def key_order(names: Iterable[str]) -> list[str]:
    """Names in etcd key order (byte order), as Milvus lists them."""
    return sorted(names, key=lambda name: name.encode())


def role_entity_text(entity: milvus_pb2.RoleEntity) -> str:
    """Go's `%s` of a `*RoleEntity`: protobuf text format on one line."""
    fields = [f'name:"{entity.name}"']
    if entity.description:
        fields.append(f'description:"{entity.description}"')
    return " ".join(fields)


@dataclass(frozen=True)
class RbacStores:
    """What the RBAC RPCs work on: Milvus's RBAC records, its credentials (users must exist
    to be bound or to grant; a backup carries their hashes) and this proxy's policy cache."""

    policy: PolicyStore
    credentials: CredentialStore
    refresher: PolicyRefresher


class RoleRpcs:
    """Roles and bindings on etcd."""

    def __init__(self, stores: RbacStores, *, max_roles: int = DEFAULT_MAX_ROLES) -> None:
        self._policy = stores.policy
        self._credentials = stores.credentials
        self._refresher = stores.refresher
        self._max_roles = max_roles

    async def ensure_default_roles(self) -> None:
        """Create `admin` and `public` if missing, as RootCoord's `initRbac` does at every
        start (their grants stay Milvus's business)."""
        for role in key_order(DEFAULT_ROLES):
            with contextlib.suppress(RoleExists):
                await self._policy.create_role(role)

    async def create_role(self, request: milvus_pb2.CreateRoleRequest) -> common_pb2.Status:
        """CreateRole: a new role, refused when it exists or the limit is reached."""
        with proxy_stage():
            validate_role_name(request.entity.name)
        role = request.entity.name
        roles = await self._policy.list_roles()
        if role in roles:
            raise invalid(f"role [{role_entity_text(request.entity)}] already exists")
        if len(roles) >= self._max_roles:
            raise Refused("unable to create role because the number of roles has reached the limit")
        try:
            await self._policy.create_role(role)
        except RoleExists as error:
            raise invalid(f"role [{role_entity_text(request.entity)}] already exists") from error
        await self._refresher.refresh()
        return common_pb2.Status()

    async def drop_role(self, request: milvus_pb2.DropRoleRequest) -> common_pb2.Status:
        """DropRole: the role and its bindings; its grants too with `force_drop`."""
        with proxy_stage():
            validate_role_name(request.role_name)
            ensure_managed(request.role_name)
        try:
            await self._policy.drop_role(request.role_name, force=request.force_drop)
        except RoleNotFound as error:
            raise invalid(ROLE_NOT_FOUND) from error
        except RoleHasGrants as error:
            raise Refused(error.reason) from error
        await self._refresher.refresh()
        return common_pb2.Status()

    async def operate_user_role(
        self, request: milvus_pb2.OperateUserRoleRequest
    ) -> common_pb2.Status:
        """OperateUserRole: bind (the user must exist) or unbind; both idempotent."""
        with proxy_stage():
            validate_username(request.username)
            validate_role_name(request.role_name)
        user, role = request.username, request.role_name
        if request.type not in (_ADD, _REMOVE):
            raise Refused("invalid operate user role type")
        if not await self._policy.role_exists(role):
            raise invalid(ROLE_NOT_FOUND)
        if request.type == _ADD:
            if await self._credentials.get(user) is None:
                raise Refused(USER_NOT_FOUND)
            try:
                await self._policy.bind(user, role)
            except RoleNotFound as error:
                raise invalid(ROLE_NOT_FOUND) from error
        else:
            try:
                await self._policy.unbind(user, role)
            except RoleNotFound as error:
                raise invalid(ROLE_NOT_FOUND) from error
        await self._refresher.refresh()
        return common_pb2.Status()

    async def select_role(
        self, request: milvus_pb2.SelectRoleRequest
    ) -> milvus_pb2.SelectRoleResponse:
        """SelectRole: one role (none if missing) or all, with their users if asked."""
        if request.HasField("role"):
            with proxy_stage():
                validate_role_name(request.role.name)
        snapshot = await self._policy.snapshot()
        wanted = [request.role.name] if request.HasField("role") else key_order(snapshot.roles)
        results = [
            milvus_pb2.RoleResult(
                role=milvus_pb2.RoleEntity(name=role),
                users=[
                    milvus_pb2.UserEntity(name=user)
                    for user in (
                        key_order(snapshot.users_of(role)) if request.include_user_info else ()
                    )
                ],
            )
            for role in wanted
            if role in snapshot.roles
        ]
        return milvus_pb2.SelectRoleResponse(status=common_pb2.Status(), results=results)

    async def select_user(
        self, request: milvus_pb2.SelectUserRequest
    ) -> milvus_pb2.SelectUserResponse:
        """SelectUser: one user with a credential (none if missing) or all, with their roles
        if asked (never the implicit `public`)."""
        if request.HasField("user"):
            with proxy_stage():
                validate_username(request.user.name)
            found = await self._credentials.get(request.user.name)
            users = [] if found is None else [request.user.name]
        else:
            users = await self._credentials.list_usernames()
        snapshot = await self._policy.snapshot() if users and request.include_role_info else None
        results = [
            milvus_pb2.UserResult(
                user=milvus_pb2.UserEntity(name=user),
                roles=[
                    milvus_pb2.RoleEntity(name=role)
                    for role in (key_order(snapshot.roles_of(user)) if snapshot else ())
                ],
            )
            for user in users
        ]
        return milvus_pb2.SelectUserResponse(status=common_pb2.Status(), results=results)
