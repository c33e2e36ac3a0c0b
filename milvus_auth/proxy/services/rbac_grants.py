"""OperatePrivilege (v1 and `version: "v2"`), OperatePrivilegeV2 and SelectGrant, as Milvus 2.6.

The proxy validates names and sets the grantor to the caller; RootCoord's common check (type,
object type, role, grantor) comes first, then the privilege rules of v1 or v2
(`core.grants.plan_v1`/`plan_v2`). Like Milvus 2.6's proxy, granting `Load` also grants
`GetLoadState` and `GetLoadingProgress`, and `Flush` also `GetFlushState` (2.3 does not).
"""

from __future__ import annotations

from collections.abc import Sequence

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.errors import InvalidParameter, RbacError, RoleNotFound
from milvus_auth.core.grants import DEFAULT_DB, PlannedGrant, plan_v1, plan_v2
from milvus_auth.core.privileges import ANY, ObjectType, api_name, parse_object_type
from milvus_auth.core.roles import validate_name, validate_object_name, validate_role_name
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.proxy.services.rbac_errors import (
    Refused,
    invalid,
    proxy_stage,
    wrapping,
)
from milvus_auth.proxy.services.rbac_roles import RbacStores

RELATED_PRIVILEGES = {"Load": ("GetLoadState", "GetLoadingProgress"), "Flush": ("GetFlushState",)}
_GRANT, _REVOKE = milvus_pb2.Grant, milvus_pb2.Revoke
_COMMON_CHECK = "failed to operate privilege common check"


def validate_optional(raw: str, kind: str) -> None:
    """Milvus's name check where `*` means any."""
    if raw != ANY:
        validate_name(raw, kind)


def check_v1_request(request: milvus_pb2.OperatePrivilegeRequest) -> None:
    """The proxy's `validPrivilegeParams`, in Milvus's order."""
    entity = request.entity
    if not request.HasField("entity"):
        raise invalid("the entity in the request is nil")
    if not entity.HasField("grantor"):
        raise invalid("the grantor entity in the grant entity is nil")
    if not entity.grantor.HasField("privilege"):
        raise invalid("the privilege entity in the grantor entity is nil")
    validate_optional(entity.grantor.privilege.name, "Privilege")
    if not entity.HasField("object"):
        raise invalid("the resource entity in the grant entity is nil")
    validate_name(entity.object.name, "ObjectType")
    validate_object_name(entity.object_name)
    if not entity.HasField("role"):
        raise invalid("the object entity in the grant entity is nil")
    validate_role_name(entity.role.name)


def check_v2_request(request: milvus_pb2.OperatePrivilegeV2Request) -> None:
    """The proxy's `validateOperatePrivilegeV2Params`, in Milvus's order."""
    if not request.HasField("role"):
        raise invalid("the role in the request is nil")
    validate_role_name(request.role.name)
    validate_optional(request.grantor.privilege.name, "Privilege")
    if request.type not in (_GRANT, _REVOKE):
        raise invalid("the type in the request not grant or revoke")
    if request.db_name not in ("", ANY):
        validate_name(request.db_name, "database name")
    validate_optional(request.collection_name, "collection name")


def as_v1(request: milvus_pb2.OperatePrivilegeV2Request) -> milvus_pb2.OperatePrivilegeRequest:
    """The OperatePrivilege request Milvus's proxy turns a V2 request into."""
    entity = milvus_pb2.GrantEntity(
        role=request.role,
        object=milvus_pb2.ObjectEntity(name=ObjectType.GLOBAL),
        object_name=request.collection_name,
        db_name=request.db_name,
        grantor=request.grantor,
    )
    return milvus_pb2.OperatePrivilegeRequest(entity=entity, type=request.type, version="v2")


def plan(request: milvus_pb2.OperatePrivilegeRequest, snapshot: PolicySnapshot) -> PlannedGrant:
    """RootCoord's privilege rules for a request that passed the common check."""
    entity = request.entity
    groups = {name: group.privileges for name, group in snapshot.groups.items()}
    privilege = entity.grantor.privilege.name
    try:
        if request.version == "v2":
            return plan_v2(
                entity.role.name, privilege, database=entity.db_name,
                collection=entity.object_name, custom_groups=groups,
            )  # fmt: skip
        return plan_v1(
            entity.role.name, privilege, object_type=entity.object.name,
            object_name=entity.object_name, database=entity.db_name, custom_groups=groups,
        )  # fmt: skip
    except InvalidParameter:
        raise
    except RbacError as error:
        raise invalid(error.reason) from error


def grant_entity(grant: StoredGrant) -> milvus_pb2.GrantEntity:
    """A stored grant as SelectGrant reports it (groups as granted, API privilege names)."""
    target = grant.target
    return milvus_pb2.GrantEntity(
        role=milvus_pb2.RoleEntity(name=target.role),
        object=milvus_pb2.ObjectEntity(name=target.object_type),
        object_name=target.name,
        db_name=target.database,
        grantor=milvus_pb2.GrantorEntity(
            user=milvus_pb2.UserEntity(name=grant.grantor),
            privilege=milvus_pb2.PrivilegeEntity(name=api_name(grant.privilege)),
        ),
    )


def listed_grants(
    snapshot: PolicySnapshot, role: str, *, database: str, object_type: str | None, name: str
) -> Sequence[StoredGrant]:
    """ListGrant: one object's grants (those on every database first), or all of the role's
    in the database (`*` on either side matches any)."""
    database = database or DEFAULT_DB
    grants = snapshot.grants_of(role)
    if object_type is None:
        return [
            g
            for g in grants
            if ANY in (database, g.target.database) or g.target.database == database
        ]
    on_object = [g for g in grants if (g.target.object_type, g.target.name) == (object_type, name)]
    any_database = [] if database == ANY else [g for g in on_object if g.target.database == ANY]
    return any_database + [g for g in on_object if g.target.database == database]


class GrantRpcs:
    """Grants on etcd; the grantor is the caller."""

    def __init__(self, stores: RbacStores) -> None:
        self._policy = stores.policy
        self._credentials = stores.credentials
        self._refresher = stores.refresher

    async def operate_privilege(
        self, request: milvus_pb2.OperatePrivilegeRequest, caller: str | None
    ) -> common_pb2.Status:
        """OperatePrivilege: grant or revoke, then the related privileges."""
        with proxy_stage():
            check_v1_request(request)
        return await self._operate(request, caller)

    async def operate_privilege_v2(
        self, request: milvus_pb2.OperatePrivilegeV2Request, caller: str | None
    ) -> common_pb2.Status:
        """OperatePrivilegeV2: an OperatePrivilege `version: "v2"` on object `Global`."""
        with proxy_stage():
            check_v2_request(request)
        return await self._operate(as_v1(request), caller)

    async def _operate(
        self, request: milvus_pb2.OperatePrivilegeRequest, caller: str | None
    ) -> common_pb2.Status:
        if caller is None:
            raise Refused("fail to get authorization from the md, authorization:[token]")
        request.entity.grantor.user.name = caller
        privilege = request.entity.grantor.privilege.name
        await self._apply(request)
        for related in RELATED_PRIVILEGES.get(privilege, ()):
            request.entity.grantor.privilege.name = related
            await self._apply(request)
        await self._refresher.refresh()
        return common_pb2.Status()

    async def _apply(self, request: milvus_pb2.OperatePrivilegeRequest) -> None:
        entity = request.entity
        snapshot = await self._policy.snapshot()
        with wrapping(_COMMON_CHECK):
            if request.type not in (_GRANT, _REVOKE):
                raise invalid(
                    f"invalid operate privilege type, current type: {request.type}, "
                    "valid value: [Grant, Revoke]"
                )
            if entity.object.name not in tuple(ObjectType):
                raise invalid("the object entity in the request is nil or invalid")
            if entity.role.name not in snapshot.roles:
                raise invalid(f'the role "{entity.role.name}" does not exist')
            grantor = entity.grantor.user.name
            if await self._credentials.get(grantor) is None:
                raise invalid(f'the grantor user "{grantor}" does not exist')
        planned = plan(request, snapshot)
        try:
            if request.type == _GRANT:
                await self._policy.grant(planned.target, planned.privilege, grantor)
            else:
                await self._policy.revoke(planned.target, planned.privilege)
        except RoleNotFound as error:
            raise invalid(f'the role "{entity.role.name}" does not exist') from error

    async def select_grant(
        self, request: milvus_pb2.SelectGrantRequest
    ) -> milvus_pb2.SelectGrantResponse:
        """SelectGrant: a role's grants in a database, or on one object."""
        entity = request.entity
        with proxy_stage():
            if not request.HasField("entity"):
                raise invalid("the grant entity in the request is nil")
            if entity.HasField("object"):
                validate_name(entity.object.name, "ObjectType")
                validate_object_name(entity.object_name)
            if not entity.HasField("role"):
                raise invalid("the role entity in the grant entity is nil")
            validate_role_name(entity.role.name)
        snapshot = await self._policy.snapshot()
        if entity.role.name not in snapshot.roles:
            raise invalid(f'the role "{entity.role.name}" does not exist')
        object_type = None
        if entity.HasField("object"):
            object_type = parse_object_type(entity.object.name)
        grants = listed_grants(
            snapshot, entity.role.name, database=entity.db_name,
            object_type=object_type, name=entity.object_name,
        )  # fmt: skip
        return milvus_pb2.SelectGrantResponse(
            status=common_pb2.Status(), entities=[grant_entity(g) for g in grants]
        )
