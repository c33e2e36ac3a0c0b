"""Roles, bindings, grants and groups written to etcd with `PolicyStore`, as RootCoord would."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from milvus_auth.core import CredentialRecord, KeyLayout, hash_password
from milvus_auth.core.grants import RbacLayout, plan_v1, plan_v2
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.store import CredentialStore, EtcdSettings, PolicyStore


class Rbac:
    """Synchronous RBAC writes for tests that drive pymilvus synchronously."""

    def __init__(self, settings: EtcdSettings, meta_root: str) -> None:
        self.settings = settings
        self.layout = RbacLayout(meta_root)

    def _run(self, action: str, *args: object) -> object:
        async def call() -> object:
            async with PolicyStore(self.settings, self.layout) as store:
                return await getattr(store, action)(*args)

        return asyncio.run(call())

    def create_user(self, user: str, password: str) -> None:
        async def call() -> None:
            layout = KeyLayout(meta_root=self.layout.meta_root)
            async with CredentialStore(self.settings, layout) as store:
                await store.create(CredentialRecord(user, hash_password(password, 4)))

        asyncio.run(call())

    def create_role(self, role: str) -> None:
        self._run("create_role", role)

    def bind(self, user: str, role: str) -> None:
        self._run("bind", user, role)

    def grant_v1(
        self, role: str, object_type: str, name: str, privilege: str, database: str = "default"
    ) -> None:
        planned = plan_v1(
            role,
            privilege,
            object_type=object_type,
            object_name=name,
            database=database,
            custom_groups=(),
        )
        self._run("grant", planned.target, planned.privilege, "root")

    def revoke_v1(self, role: str, object_type: str, name: str, privilege: str) -> None:
        planned = plan_v1(
            role,
            privilege,
            object_type=object_type,
            object_name=name,
            database="default",
            custom_groups=(),
        )
        self._run("revoke", planned.target, planned.privilege)

    def grant_v2(
        self,
        role: str,
        privilege: str,
        *,
        database: str = "default",
        collection: str = "*",
        groups: dict[str, Sequence[str]] | None = None,
    ) -> None:
        planned = plan_v2(
            role, privilege, database=database, collection=collection, custom_groups=groups or {}
        )
        self._run("grant", planned.target, planned.privilege, "root")

    def create_group(self, name: str, privileges: Sequence[str]) -> None:
        async def call() -> None:
            async with PolicyStore(self.settings, self.layout) as store:
                await store.create_group(name)
                found = await store.get_group(name)
                assert found is not None
                await store.update_group(
                    PrivilegeGroup(name, tuple(privileges)), expected_revision=found[1]
                )

        asyncio.run(call())
