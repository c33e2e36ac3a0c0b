"""Decide what a MilvusRole, or a MilvusUser's `spec.roles`, needs: pure functions, no I/O.

The declared grants are authoritative for a declared role: the plan makes the role's grants in
etcd equal to the spec's, expanded by Milvus's v2 grant rules (`core.grants.plan_v2`, grantor
`root`), so the records are those a stock RootCoord writes for `grant_privilege_v2`. Likewise a
set `spec.roles` is authoritative for that user's mappings; an absent one plans nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.errors import MilvusError
from milvus_auth.core.grants import GrantTarget, plan_v2
from milvus_auth.core.privileges import api_name
from milvus_auth.core.roles import ADMIN_ROLE, DEFAULT_ROLES, PUBLIC_ROLE, validate_role_name
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.operator.permissions import Privilege, elevated
from milvus_auth.operator.roles.spec import RoleSpec
from milvus_auth.store.claims import Claim, Origin

GRANTOR = ROOT_USERNAME

Grant = tuple[GrantTarget, str]
"""A target and the stored privilege name (`PrivilegeSearch`, `PrivilegeGroupX`, `*`)."""


class InvalidRole(Exception):
    """The spec can never work; the message names the bad entry."""


def custom_groups(snapshot: PolicySnapshot) -> dict[str, tuple[str, ...]]:
    """The custom privilege groups' members, by group name."""
    return {name: group.privileges for name, group in snapshot.groups.items()}


def check_role(spec: RoleSpec) -> None:
    """Refuse a role name Milvus would refuse, and the built-in roles."""
    try:
        name = validate_role_name(spec.role)
    except MilvusError as error:
        raise InvalidRole(f"spec.roleName: {error.reason}") from None
    if name != spec.role:
        raise InvalidRole("spec.roleName must not have leading or trailing spaces")
    if name in DEFAULT_ROLES:
        raise InvalidRole(f"spec.roleName {name} is a built-in role and cannot be declared")


def desired_grants(spec: RoleSpec, groups: Mapping[str, Sequence[str]]) -> frozenset[Grant]:
    """Every (target, stored privilege) the spec declares; `InvalidRole` names a bad entry."""
    check_role(spec)
    wanted: set[Grant] = set()
    for index, grant in enumerate(spec.grants):
        for privilege in grant.privileges:
            try:
                planned = plan_v2(
                    spec.role,
                    privilege,
                    database=grant.database,
                    collection=grant.collection,
                    custom_groups=groups,
                )
            except MilvusError as error:
                raise InvalidRole(f"spec.grants[{index}] {privilege}: {error.reason}") from None
            wanted.add((planned.target, planned.privilege))
    return frozenset(wanted)


def held_grants(role: str, snapshot: PolicySnapshot) -> frozenset[Grant]:
    """What etcd grants the role now."""
    return frozenset((g.target, g.privilege) for g in snapshot.grants_of(role))


@dataclass(frozen=True)
class RolePlan:
    """The writes that make a role equal to its spec; empty when it already is."""

    create: bool
    grant: tuple[Grant, ...]
    revoke: tuple[Grant, ...]

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not self.create and not self.grant and not self.revoke


def plan_role(role: str, wanted: frozenset[Grant], snapshot: PolicySnapshot) -> RolePlan:
    """Create the role if missing, grant what is missing, revoke what is extra (sorted)."""
    held = held_grants(role, snapshot)
    return RolePlan(
        create=role not in snapshot.roles,
        grant=tuple(sorted(wanted - held, key=_order)),
        revoke=tuple(sorted(held - wanted, key=_order)),
    )


def fingerprint(grants: frozenset[Grant]) -> str:
    """A short digest of a role's grants: changes exactly when they do (marks the users)."""
    text = "\n".join("\t".join(_order(grant)) for grant in sorted(grants, key=_order))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(grant: Grant) -> str:
    """`Search on Collection default.docs`, for events and messages."""
    target, privilege = grant
    return f"{api_name(privilege)} on {target.object_type} {target.object_name}"


def role_privileges(
    spec: RoleSpec,
    groups: Mapping[str, Sequence[str]],
    *,
    claim: Claim | None,
    exists: bool,
) -> list[Privilege]:
    """What declaring this role asks for: elevated grants, or taking over (or keeping) a role
    that existed before its claim."""
    needed = []
    if any(elevated(p, groups) for grant in spec.grants for p in grant.privileges):
        needed.append(Privilege.GRANT_ELEVATED)
    adopting = exists if claim is None else claim.origin is Origin.ADOPTED
    if adopting and (claim is None or claim.owner == spec.owner):
        needed.append(Privilege.ADOPT_ROLE)
    return needed


def grant_databases(spec: RoleSpec) -> set[str]:
    """The databases the spec's grants name (`*` included as is)."""
    return {grant.database for grant in spec.grants}


def elevated_role(role: str, snapshot: PolicySnapshot) -> bool:
    """Whether binding `role` hands out a cluster-level power (admin always does)."""
    if role == ADMIN_ROLE:
        return True
    groups = custom_groups(snapshot)
    return any(elevated(api_name(g.privilege), groups) for g in snapshot.grants_of(role))


@dataclass(frozen=True)
class BindingPlan:
    """The mapping writes for one user; `missing` roles do not exist in Milvus yet."""

    bind: tuple[str, ...] = ()
    unbind: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def plan_bindings(
    user: str, roles: tuple[str, ...] | None, snapshot: PolicySnapshot
) -> BindingPlan:
    """Make the user's mappings equal to `roles` (None: leave them alone). `public` is never
    mapped (every user holds it implicitly); roles that do not exist yet are reported, not
    bound, and the user's other mappings still follow the spec."""
    if roles is None:
        return BindingPlan()
    wanted = set(roles) - {PUBLIC_ROLE}
    held = snapshot.roles_of(user)
    missing = wanted - snapshot.roles
    return BindingPlan(
        bind=tuple(sorted(wanted - held - missing)),
        unbind=tuple(sorted(held - wanted)),
        missing=tuple(sorted(missing)),
    )


def binding_privileges(roles: tuple[str, ...] | None, snapshot: PolicySnapshot) -> list[Privilege]:
    """What binding these roles asks for: admin, or roles holding elevated grants."""
    needed = []
    for role in roles or ():
        if role == ADMIN_ROLE:
            needed.append(Privilege.BIND_ADMIN)
        elif elevated_role(role, snapshot):
            needed.append(Privilege.BIND_ELEVATED)
    return needed


def _order(grant: Grant) -> tuple[str, str, str, str, str]:
    target, privilege = grant
    return (target.role, target.object_type, target.database, target.name, privilege)
