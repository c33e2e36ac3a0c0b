"""Privilege-group RPCs as Milvus 2.6 serves them: create, drop, list, add and remove members.

Custom groups live under `root-coord/privilege-group/`; the nine built-in groups are listed
after them. Added members are appended in the order given (Milvus merges through a Go map, so
its stored order is random); dropping a group nobody defined succeeds, as in Milvus.
"""

from __future__ import annotations

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import BUILTIN_GROUPS, metastore_name, privilege_level
from milvus_auth.proxy.services.rbac_errors import (
    CODE_PRIVILEGE_GROUP_INVALID,
    Refused,
    invalid,
    proxy_stage,
    wrapping,
)
from milvus_auth.proxy.services.rbac_grants import validate_optional
from milvus_auth.proxy.services.rbac_roles import RbacStores
from milvus_auth.store import RevisionConflict

MAX_GROUP_NAME = 255
ATTEMPTS = 5
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_TAIL = _LETTERS | frozenset("0123456789")
_ADD = milvus_pb2.AddPrivilegesToGroup
_REMOVE = milvus_pb2.RemovePrivilegesFromGroup


def validate_group_name(name: str) -> None:
    """The proxy's `ValidatePrivilegeGroupName` (no trimming; letters, digits, `_`)."""
    suffix = "invalid privilege group name"
    if not name:
        raise Refused(
            f"privilege group name should not be empty: {suffix}", CODE_PRIVILEGE_GROUP_INVALID
        )
    if len(name.encode()) > MAX_GROUP_NAME:
        raise Refused(
            f"the length of a privilege group name {name} must be less than "
            f"{MAX_GROUP_NAME} characters: {suffix}",
            CODE_PRIVILEGE_GROUP_INVALID,
        )
    if name[0] not in _LETTERS:
        raise Refused(
            f"the first character of a privilege group name {name} must be an underscore or "
            f"letter: {suffix}",
            CODE_PRIVILEGE_GROUP_INVALID,
        )
    if any(char not in _TAIL for char in name[1:]):
        raise invalid(
            f"privilege group name {name} can only contain numbers, letters and underscores"
        )


def group_info(name: str, privileges: tuple[str, ...]) -> milvus_pb2.PrivilegeGroupInfo:
    """A group as ListPrivilegeGroups reports it."""
    return milvus_pb2.PrivilegeGroupInfo(
        group_name=name, privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in privileges]
    )


def altered_members(
    current: tuple[str, ...], given: list[str], *, add: bool, custom: frozenset[str]
) -> tuple[str, ...]:
    """RootCoord's `CheckIfPrivilegeGroupAlterable` and the members after the change."""
    if not given:
        raise invalid("privileges is empty when alter the privilege group")
    for name in given:
        if metastore_name(name) is None and name not in custom:
            raise invalid(
                f"there is no privilege name or privilege group name [{name}] defined in system "
                "to operate"
            )
    if not add:
        return tuple(member for member in current if member not in given)
    merged = current + tuple(dict.fromkeys(n for n in given if n not in current))
    if len({privilege_level(member) for member in merged}) > 1:
        raise invalid("privileges are not the same privilege level")
    return merged


class GroupRpcs:
    """Custom privilege groups on etcd."""

    def __init__(self, stores: RbacStores) -> None:
        self._policy = stores.policy
        self._refresher = stores.refresher

    async def create_group(
        self, request: milvus_pb2.CreatePrivilegeGroupRequest
    ) -> common_pb2.Status:
        """CreatePrivilegeGroup: an empty custom group with a name no privilege has."""
        with proxy_stage():
            validate_group_name(request.group_name)
        name = request.group_name.strip()
        with wrapping("failed to check if privilege group creatable"):
            if not name:
                raise Refused("privilege group name is empty")
            if metastore_name(name) is not None:
                raise invalid(
                    f"privilege group name [{name}] is defined by built in privileges or "
                    "privilege groups in system"
                )
            await self._policy.create_group(name)
        await self._refresher.refresh()
        return common_pb2.Status()

    async def drop_group(self, request: milvus_pb2.DropPrivilegeGroupRequest) -> common_pb2.Status:
        """DropPrivilegeGroup: refused while a role holds the group; absent is not an error."""
        with proxy_stage():
            validate_group_name(request.group_name)
        name = request.group_name
        snapshot = await self._policy.snapshot()
        if name not in snapshot.groups:
            return common_pb2.Status()
        with wrapping("failed to check if privilege group dropable"):
            for grant in snapshot.grants:
                if grant.privilege == f"PrivilegeGroup{name}":
                    raise Refused(
                        f"privilege group [{name}] is used by role [{grant.target.role}], "
                        "Use REVOKE API to revoke it first"
                    )
        await self._policy.drop_group(name)
        await self._refresher.refresh()
        return common_pb2.Status()

    async def list_groups(
        self, _: milvus_pb2.ListPrivilegeGroupsRequest
    ) -> milvus_pb2.ListPrivilegeGroupsResponse:
        """ListPrivilegeGroups: custom groups (etcd order), then the built-in ones."""
        snapshot = await self._policy.snapshot()
        custom = sorted(snapshot.groups.items(), key=lambda item: item[0].encode())
        groups = [group_info(name, group.privileges) for name, group in custom]
        groups += [group_info(name, members) for name, members in BUILTIN_GROUPS.items()]
        return milvus_pb2.ListPrivilegeGroupsResponse(
            status=common_pb2.Status(), privilege_groups=groups
        )

    async def operate_group(
        self, request: milvus_pb2.OperatePrivilegeGroupRequest
    ) -> common_pb2.Status:
        """OperatePrivilegeGroup: add members of one level, or remove members."""
        with proxy_stage():
            validate_group_name(request.group_name)
            for privilege in request.privileges:
                validate_optional(privilege.name, "Privilege")
        name, given = request.group_name, [p.name for p in request.privileges]
        for _ in range(ATTEMPTS):
            with wrapping("failed to check if privilege group alterable"):
                if request.type not in (_ADD, _REMOVE):
                    raise invalid("invalid operate privilege group type")
                snapshot = await self._policy.snapshot()
                found = await self._policy.get_group(name)
                if found is None:
                    raise invalid(
                        f"there is no privilege group name [{name}] defined in system to operate"
                    )
                group, revision = found
                members = altered_members(
                    group.privileges, given, add=request.type == _ADD,
                    custom=frozenset(snapshot.groups),
                )  # fmt: skip
            try:
                await self._policy.update_group(
                    PrivilegeGroup(name, members), expected_revision=revision
                )
            except RevisionConflict:
                continue
            await self._refresher.refresh()
            return common_pb2.Status()
        raise RevisionConflict(f"privilege group {name}", 0)
