"""The policy store: Milvus's roles, bindings, grants and privilege groups on etcd.

Keys and values are what a stock RootCoord writes (`core.grants.RbacLayout`), so Milvus and
milvus-auth read each other's records. RootCoord serialises RBAC writes under a process lock;
milvus-auth has many writers (proxies, the operator, the CLI), so every write that depends on
what was read is one etcd transaction whose compares pin what was read, retried a few times
when another writer got there first (`RevisionConflict` after that).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aetcd
from aetcd import rpc

from milvus_auth.core.errors import (
    GranteeNotFound,
    InvalidParameter,
    RoleExists,
    RoleHasGrants,
    RoleNotFound,
)
from milvus_auth.core.grants import DEFAULT_DB, GrantTarget, RbacLayout
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.snapshot import PolicySnapshot, parse_snapshot
from milvus_auth.store.client import ConnectedStore, EtcdConnection
from milvus_auth.store.errors import RevisionConflict
from milvus_auth.store.settings import EtcdSettings

ATTEMPTS = 5
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops (Milvus batches by util.MaxEtcdTxnNum too)
_T = aetcd.transactions


@dataclass(frozen=True)
class _Txn:
    """One planned transaction: it applies `ops` only if every compare still holds."""

    compare: Sequence[object]
    ops: Sequence[object]


def _range(prefix: str) -> tuple[bytes, bytes]:
    key = prefix.encode()
    return key, aetcd.utils.prefix_range_end(key)


class PolicyStore(ConnectedStore):
    """Reads and compare-and-swap writes of Milvus's RBAC keys under one meta root."""

    def __init__(self, settings: EtcdSettings, layout: RbacLayout) -> None:
        self.layout = layout
        self.connection = EtcdConnection(settings)

    async def snapshot(self) -> PolicySnapshot:
        """Every role, binding, grant and custom group, read in one transaction."""
        layout = self.layout
        prefixes = (
            layout.roles_prefix,
            layout.mappings_prefix,
            layout.grants_prefix,
            layout.grantee_ids_prefix,
            layout.groups_prefix,
        )
        revision, found = await self._read([_range(prefix) for prefix in prefixes])
        roles, bindings, grants, privileges, groups = found
        return parse_snapshot(
            layout,
            revision,
            roles=roles,
            bindings=bindings,
            grants=grants,
            privileges=privileges,
            groups=groups,
        )

    async def _read(
        self, ranges: Sequence[tuple[bytes, bytes]]
    ) -> tuple[int, list[list[tuple[str, bytes]]]]:
        """Several ranges at one revision (a read-only transaction, so the header says which)."""
        request = rpc.TxnRequest(
            success=[
                rpc.RequestOp(request_range=rpc.RangeRequest(key=start, range_end=end))
                for start, end in ranges
            ]
        )

        async def read(client: aetcd.Client) -> rpc.TxnResponse:
            await client.connect()
            return await client.kvstub.Txn(
                request, timeout=self.connection.settings.timeout, metadata=client.metadata
            )

        response = await self.connection.call(read)
        found = [
            [(kv.key.decode(), bytes(kv.value)) for kv in op.response_range.kvs]
            for op in response.responses
        ]
        return int(response.header.revision), found

    async def _get(self, key: str) -> bytes | None:
        found = await self.connection.call(lambda c: c.get(key.encode()))
        return None if found is None else bytes(found.value)

    async def _apply(self, plan: _Txn) -> bool:
        async def txn(client: aetcd.Client) -> bool:
            succeeded, _ = await client.transaction(
                compare=list(plan.compare), success=list(plan.ops), failure=[]
            )
            return bool(succeeded)

        return await self.connection.call(txn)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[bool]]) -> None:
        """Run a read-decide-write attempt until its transaction commits."""
        for _ in range(ATTEMPTS):
            if await attempt():
                return
        raise RevisionConflict(what, 0)

    async def list_roles(self) -> list[str]:
        """Every role name, sorted (the built-in `admin` and `public` included)."""
        return sorted((await self.snapshot()).roles)

    async def role_exists(self, role: str) -> bool:
        """Whether the role has a record."""
        return await self._get(self.layout.role_key(role)) is not None

    async def create_role(self, role: str) -> None:
        """Create a role (value `""`) only if it does not exist; `RoleExists` otherwise."""
        key = self.layout.role_key(role).encode()
        if not await self._apply(_Txn([_T.Create(key) == 0], [_T.Put(key, b"")])):
            raise RoleExists(role)

    async def drop_role(self, role: str, *, force: bool = False) -> None:
        """Delete a role and its bindings, as Milvus's DropRole does.

        Without `force`, a role that still grants a privilege is refused (`RoleHasGrants`) and
        the grant keys emptied by earlier revokes stay, exactly as a stock RootCoord leaves
        them (2.3 and 2.6 alike; checked against the real server). With `force`, its grant keys
        and their grantee-id entries go too (DeleteGrant). The first transaction commits only
        if no binding or grant changed since the read; beyond etcd's 128 operations per
        transaction the remaining bindings go in further batches, as Milvus batches them.
        """

        async def attempt() -> bool:
            snapshot = await self.snapshot()
            if role not in snapshot.roles:
                raise RoleNotFound(role)
            if snapshot.grants_of(role) and not force:
                raise RoleHasGrants(role)
            grants = _range(f"{self.layout.grants_prefix}{role}/")
            role_key = self.layout.role_key(role).encode()
            compare = [
                _T.Version(role_key) > 0,
                _T.Mod(*grants) < snapshot.revision + 1,
                _T.Mod(*_range(self.layout.grantee_ids_prefix)) < snapshot.revision + 1,
                _T.Mod(*_range(self.layout.mappings_prefix)) < snapshot.revision + 1,
            ]
            ops: list[object] = [_T.Delete(role_key)]
            if force:
                _, (grant_keys,) = await self._read([grants])
                ids = sorted({value.decode() for _, value in grant_keys})
                ops.append(_T.Delete(*grants))
                ops += [_T.Delete(*_range(f"{self.layout.grantee_ids_prefix}{i}/")) for i in ids]
            ops += [
                _T.Delete(self.layout.mapping_key(user, role).encode())
                for user in sorted(snapshot.users_of(role))
            ]
            first, rest = ops[:MAX_TXN_OPS], ops[MAX_TXN_OPS:]
            if not await self._apply(_Txn(compare, first)):
                return False
            for start in range(0, len(rest), MAX_TXN_OPS):
                await self._apply(_Txn([], rest[start : start + MAX_TXN_OPS]))
            return True

        await self._retry(f"role {role}", attempt)

    async def bind(self, user: str, role: str) -> None:
        """Bind a user to a role; both must exist (Milvus's CheckIfOperateUserRole)."""
        role_key = self.layout.role_key(role).encode()
        user_key = (self.layout.users_prefix + user).encode()
        mapping = self.layout.mapping_key(user, role).encode()
        plan = _Txn([_T.Version(role_key) > 0, _T.Version(user_key) > 0], [_T.Put(mapping, b"")])
        if await self._apply(plan):
            return
        if not await self.role_exists(role):
            raise RoleNotFound(role)
        raise GranteeNotFound(user)

    async def unbind(self, user: str, role: str) -> bool:
        """Remove a binding of an existing role; True if there was one."""
        role_key = self.layout.role_key(role).encode()
        mapping = self.layout.mapping_key(user, role).encode()
        if await self._get(mapping.decode()) is None:
            if not await self.role_exists(role):
                raise RoleNotFound(role)
            return False
        if not await self._apply(_Txn([_T.Version(role_key) > 0], [_T.Delete(mapping)])):
            raise RoleNotFound(role)
        return True

    async def grant(self, target: GrantTarget, privilege: str, grantor: str) -> bool:
        """Grant a stored privilege name on a target (AlterGrant); False if already granted.

        A new target gets the grantee id a stock RootCoord computes; an existing one keeps the
        id it has. An existing privilege keeps its original grantor, as in Milvus.
        """
        role_key = self.layout.role_key(target.role).encode()
        granted = False

        async def attempt() -> bool:
            nonlocal granted
            grant_key, stored = await self._grant_key_in_use(target)
            grantee = stored.decode() if stored is not None else self.layout.grantee_id_for(target)
            privilege_key = self.layout.privilege_key(grantee, privilege).encode()
            pin = (
                _T.Value(grant_key.encode()) == stored
                if stored is not None
                else _T.Create(grant_key.encode()) == 0
            )
            compare = [_T.Version(role_key) > 0, pin, _T.Create(privilege_key) == 0]
            ops = [_T.Put(privilege_key, grantor.encode())]
            if stored is None:
                ops.insert(0, _T.Put(grant_key.encode(), grantee.encode()))
            if await self._apply(_Txn(compare, ops)):
                granted = True
                return True
            if not await self.role_exists(target.role):
                raise RoleNotFound(target.role)
            return await self._get(privilege_key.decode()) is not None

        await self._retry(self.layout.grant_key(target), attempt)
        return granted

    async def _grant_key_in_use(self, target: GrantTarget) -> tuple[str, bytes | None]:
        """The grant key Milvus uses and its id: in `default`, a legacy key without `<db>.`
        wins when it exists (AlterGrant's "compatible with logic without db")."""
        if target.database == DEFAULT_DB:
            legacy = self.layout.legacy_grant_key(target)
            stored = await self._get(legacy)
            if stored is not None:
                return legacy, stored
        key = self.layout.grant_key(target)
        return key, await self._get(key)

    async def revoke(self, target: GrantTarget, privilege: str) -> bool:
        """Revoke one privilege (only its grantee-id key goes); True if it was granted."""
        grant_key, stored = await self._grant_key_in_use(target)
        if stored is None:
            return False
        privilege_key = self.layout.privilege_key(stored.decode(), privilege).encode()

        async def delete(client: aetcd.Client) -> int:
            succeeded, responses = await client.transaction(
                compare=[_T.Value(grant_key.encode()) == stored],
                success=[_T.Delete(privilege_key)],
                failure=[],
            )
            if not succeeded:
                raise RevisionConflict(grant_key, 0)
            return int(responses[0].response_delete_range.deleted)

        return await self.connection.call(delete) > 0

    async def get_group(self, name: str) -> tuple[PrivilegeGroup, int] | None:
        """A custom privilege group and its mod revision, or None."""
        key = self.layout.group_key(name)
        found = await self.connection.call(lambda c: c.get(key.encode()))
        if found is None:
            return None
        return PrivilegeGroup.decode(key, bytes(found.value)), int(found.mod_revision)

    async def create_group(self, name: str) -> None:
        """Create an empty custom group; Milvus's refusal if one by that name exists."""
        key = self.layout.group_key(name).encode()
        value = PrivilegeGroup(name).encode()
        if not await self._apply(_Txn([_T.Create(key) == 0], [_T.Put(key, value)])):
            raise InvalidParameter(f"privilege group name [{name}] is defined by users")

    async def update_group(self, group: PrivilegeGroup, *, expected_revision: int) -> None:
        """Rewrite a group's members if nobody changed it since `expected_revision`."""
        key = self.layout.group_key(group.name).encode()
        plan = _Txn([_T.Mod(key) == expected_revision], [_T.Put(key, group.encode())])
        if not await self._apply(plan):
            raise RevisionConflict(key.decode(), expected_revision)

    async def drop_group(self, name: str) -> bool:
        """Delete a custom privilege group; True if it existed."""
        key = self.layout.group_key(name).encode()

        async def delete(client: aetcd.Client) -> int:
            _, responses = await client.transaction(
                compare=[], success=[_T.Delete(key)], failure=[]
            )
            return int(responses[0].response_delete_range.deleted)

        return await self.connection.call(delete) > 0
