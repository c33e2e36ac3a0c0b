"""Every role, binding, grant and custom group at one etcd revision, parsed from Milvus's keys.

The store reads the raw key-values in one transaction; this module turns them into typed data,
so a policy cache can be loaded (and this parsing tested) without etcd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from milvus_auth.core.grants import GrantTarget, RbacLayout
from milvus_auth.core.groups import PrivilegeGroup

KeyValues = Iterable[tuple[str, bytes]]


@dataclass(frozen=True)
class StoredGrant:
    """One granted privilege: target, stored privilege name (`PrivilegeX`, `PrivilegeGroupX`,
    `*`), and the grantor Milvus recorded."""

    target: GrantTarget
    privilege: str
    grantor: str


@dataclass(frozen=True)
class PolicySnapshot:
    """The RBAC state at `revision`; watch events after it bring it up to date."""

    revision: int
    roles: frozenset[str] = frozenset()
    bindings: frozenset[tuple[str, str]] = frozenset()
    """(user, role) pairs."""
    grants: tuple[StoredGrant, ...] = ()
    groups: Mapping[str, PrivilegeGroup] = field(default_factory=lambda: MappingProxyType({}))
    """Custom privilege groups by name (built-in ones are in `core.privileges`)."""

    def roles_of(self, user: str) -> frozenset[str]:
        """The roles bound to a user (without the implicit `public`)."""
        return frozenset(role for bound, role in self.bindings if bound == user)

    def users_of(self, role: str) -> frozenset[str]:
        """The users bound to a role."""
        return frozenset(user for user, bound in self.bindings if bound == role)

    def grants_of(self, role: str) -> tuple[StoredGrant, ...]:
        """A role's grants, in key order."""
        return tuple(grant for grant in self.grants if grant.target.role == role)


def parse_snapshot(
    layout: RbacLayout,
    revision: int,
    *,
    roles: KeyValues,
    bindings: KeyValues,
    grants: KeyValues,
    privileges: KeyValues,
    groups: KeyValues,
) -> PolicySnapshot:
    """Join grant keys (target → grantee id) with grantee-id keys (id/privilege → grantor).

    A grant key whose privileges were all revoked grants nothing; a grantee id no grant key
    points to (left by an interrupted writer) is ignored, as Milvus's ListGrant ignores it.
    """
    by_id: dict[str, list[tuple[str, str]]] = {}
    for key, value in privileges:
        grantee, privilege = layout.parse_privilege_key(key)
        by_id.setdefault(grantee, []).append((privilege, value.decode()))
    stored = [
        StoredGrant(layout.parse_grant_key(key), privilege, grantor)
        for key, value in grants
        for privilege, grantor in by_id.get(value.decode(), ())
    ]
    parsed_groups = {}
    for key, value in groups:
        group = PrivilegeGroup.decode(key, value)
        parsed_groups[group.name or layout.name_under(key, layout.groups_prefix)] = group
    return PolicySnapshot(
        revision=revision,
        roles=frozenset(layout.name_under(key, layout.roles_prefix) for key, _ in roles),
        bindings=frozenset(layout.parse_mapping_key(key) for key, _ in bindings),
        grants=tuple(stored),
        groups=MappingProxyType(parsed_groups),
    )
