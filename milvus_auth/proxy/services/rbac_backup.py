"""BackupRBAC and RestoreRBAC as Milvus 2.6 serves them.

A backup holds what Milvus's holds: every user but root *with its stored bcrypt hash* (so a
restore recreates working logins), their roles, every role but `admin` and `public` with its
grants (API names, groups as granted), and the custom privilege groups. It is never logged.
A restore refuses anything that already exists before it writes, then writes roles, groups,
grants, users and bindings in that order, then reloads the policy cache.
"""

from __future__ import annotations

from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core.credentials import ROOT_USERNAME
from milvus_auth.core.grants import GrantTarget
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.layout import CredentialRecord
from milvus_auth.core.privileges import metastore_name, parse_object_type, stored_name
from milvus_auth.core.roles import DEFAULT_ROLES
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.proxy.services.rbac_errors import Refused, wrapping
from milvus_auth.proxy.services.rbac_grants import grant_entity
from milvus_auth.proxy.services.rbac_roles import RbacStores, key_order


def check_restorable(
    meta: milvus_pb2.RBACMeta, snapshot: PolicySnapshot, users: frozenset[str]
) -> None:
    """RootCoord's `CheckIfRBACRestorable`: nothing in the backup may exist already, every
    grant names a defined privilege or a group, every binding a role that will exist."""
    for role in meta.roles:
        if role.name in snapshot.roles:
            raise Refused(f"role [{role.name}] already exists")
    restored_groups = {group.group_name for group in meta.privilege_groups}
    for group in meta.privilege_groups:
        if group.group_name in snapshot.groups:
            raise Refused(f"privilege group [{group.group_name}] already exists")
    groups = restored_groups | set(snapshot.groups)
    for grant in meta.grants:
        name = grant.grantor.privilege.name
        if name != "*" and metastore_name(name) is None and name not in groups:
            raise Refused(f"privilege [{name}] does not exist")
    roles = set(snapshot.roles) | {role.name for role in meta.roles}
    for user in meta.users:
        if user.user in users:
            raise Refused(f"user [{user.user}] already exists")
        for role in user.roles:
            if role.name not in roles:
                raise Refused(f"role [{role.name}] does not exist")


class BackupRpcs:
    """The whole RBAC state out, and back in."""

    def __init__(self, stores: RbacStores) -> None:
        self._policy = stores.policy
        self._credentials = stores.credentials
        self._refresher = stores.refresher

    async def backup(
        self, _: milvus_pb2.BackupRBACMetaRequest
    ) -> milvus_pb2.BackupRBACMetaResponse:
        """BackupRBAC: users (with hashes), roles, grants and custom groups."""
        snapshot = await self._policy.snapshot()
        users = []
        for username in await self._credentials.list_usernames():
            stored = await self._credentials.get(username)
            if username == ROOT_USERNAME or stored is None:
                continue
            users.append(
                milvus_pb2.UserInfo(
                    user=username,
                    password=stored.record.encrypted_password,
                    roles=[
                        milvus_pb2.RoleEntity(name=r)
                        for r in key_order(snapshot.roles_of(username))
                    ],
                )
            )
        roles = [r for r in key_order(snapshot.roles) if r not in DEFAULT_ROLES]
        meta = milvus_pb2.RBACMeta(
            users=users,
            roles=[milvus_pb2.RoleEntity(name=role) for role in roles],
            grants=[grant_entity(g) for role in roles for g in snapshot.grants_of(role)],
            privilege_groups=[
                milvus_pb2.PrivilegeGroupInfo(
                    group_name=name,
                    privileges=[milvus_pb2.PrivilegeEntity(name=p) for p in group.privileges],
                )
                for name, group in sorted(snapshot.groups.items(), key=lambda i: i[0].encode())
            ],
        )
        return milvus_pb2.BackupRBACMetaResponse(status=common_pb2.Status(), RBAC_meta=meta)

    async def restore(self, request: milvus_pb2.RestoreRBACMetaRequest) -> common_pb2.Status:
        """RestoreRBAC: refuse what exists, then write everything in the backup."""
        meta = request.RBAC_meta
        if not request.HasField("RBAC_meta") or not (
            meta.users or meta.roles or meta.grants or meta.privilege_groups
        ):
            return common_pb2.Status()
        snapshot = await self._policy.snapshot()
        users = frozenset(await self._credentials.list_usernames())
        with wrapping("failed to check if rbac restorable"):
            check_restorable(meta, snapshot, users)
        for role in meta.roles:
            await self._policy.create_role(role.name)
        for group in meta.privilege_groups:
            await self._policy.create_group(group.group_name)
            found = await self._policy.get_group(group.group_name)
            members = tuple(p.name for p in group.privileges)
            if found is not None and members:
                await self._policy.update_group(
                    PrivilegeGroup(group.group_name, members), expected_revision=found[1]
                )
        groups = set(snapshot.groups) | {g.group_name for g in meta.privilege_groups}
        for grant in meta.grants:
            target = GrantTarget(
                grant.role.name,
                parse_object_type(grant.object.name),
                grant.db_name,
                grant.object_name,
            )
            privilege = stored_name(grant.grantor.privilege.name, groups)
            await self._policy.grant(target, privilege, grant.grantor.user.name)
        for user in meta.users:
            await self._credentials.create(CredentialRecord(user.user, user.password))
        for user in meta.users:
            for role in user.roles:
                await self._policy.bind(user.user, role.name)
        await self._refresher.refresh()
        return common_pb2.Status()
