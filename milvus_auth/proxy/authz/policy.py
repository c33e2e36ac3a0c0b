"""The policy a proxy decides on: Milvus's casbin rows, expanded and indexed, and the matcher.

RootCoord's `ListPolicy` (2.5+) expands privilege groups when it builds the rows the proxies
load (`expandPrivilegeGroups`): a grant of a built-in v2 group or a custom group becomes one row
per member, each re-typed by `GetObjectType` (Global rows on object `*`). The v1 groups
`ReadOnly`/`ReadWrite`/`Admin` stay rows of their own and are matched by
`privilegeGroupContains`. The matcher is Milvus 2.6's casbin model, evaluated per role:

    r.sub == p.sub && globMatch(r.obj, p.obj) && globMatch(r.act, p.act)
    || r.sub == "admin"
    || (r.sub == p.sub && dbMatch(r.obj, p.obj) && privilegeGroupContains(r.act, p.act, ...))

Rows are kept as the exact JSON strings RootCoord sends in `RefreshPolicyInfoCache`, so ops 3,
4 and 6 add and remove them by string as Milvus's proxy does. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from milvus_auth.core.errors import RbacError
from milvus_auth.core.grants import Policy, policy_object, split_object_name
from milvus_auth.core.privileges import (
    ANY,
    BUILTIN_GROUPS,
    PRIVILEGE_WORD,
    V1_GROUPS,
    ObjectType,
    api_name,
    object_type_for,
    stored_name,
)
from milvus_auth.core.roles import ADMIN_ROLE, PUBLIC_ROLE
from milvus_auth.core.snapshot import PolicySnapshot

_ALL = "PrivilegeAll"
_V1_MEMBERS: Mapping[str, frozenset[str]] = {
    f"PrivilegeGroup{group}": frozenset(PRIVILEGE_WORD + member for member in members)
    for group, members in V1_GROUPS.items()
}
_PUBLIC_ONLY = frozenset({PUBLIC_ROLE})
_V1_COLLECTION_SCOPED = frozenset({"PrivilegeGroupReadOnly", "PrivilegeGroupReadWrite"})


def expanded_policies(snapshot: PolicySnapshot) -> frozenset[str]:
    """`ListPolicy`'s rows for a snapshot: every grant, groups expanded one level."""
    custom = {name: group.privileges for name, group in snapshot.groups.items()}
    groups: dict[str, tuple[str, ...]] = {**BUILTIN_GROUPS, **custom}
    rows: set[str] = set()
    for grant in snapshot.grants:
        target = grant.target
        granted = grant.privilege if grant.privilege == ANY else api_name(grant.privilege)
        for member in groups.get(granted, (granted,)):
            try:
                stored = stored_name(member, custom)
            except RbacError:
                continue  # RootCoord fails the whole ListPolicy; one bad member grants nothing
            object_type = object_type_for(member)
            name = ANY if object_type is ObjectType.GLOBAL else target.name
            resource = policy_object(object_type, target.database, name)
            rows.add(Policy(target.role, resource, stored).to_json())
    return frozenset(rows)


def _glob(pattern: str) -> re.Pattern[str] | None:
    """casbin's globMatch with the policy as the pattern: `*` any run without `/`, `?` one
    character but `/`; every other character literal. None when the pattern is a literal."""
    if "*" not in pattern and "?" not in pattern:
        return None
    parts = (
        "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile("".join(parts))


def _glob_match(value: str, pattern: str, compiled: re.Pattern[str] | None) -> bool:
    return value == pattern if compiled is None else compiled.fullmatch(value) is not None


def _after_type(resource: str) -> tuple[str, str]:
    """The database and name of `<Type>-<db>.<name>` (`SplitObjectName` after the first `-`)."""
    return split_object_name(resource[resource.find("-") + 1 :])


@dataclass(frozen=True)
class _Row:
    resource: str
    privilege: str
    resource_glob: re.Pattern[str] | None
    privilege_glob: re.Pattern[str] | None
    database: str
    name: str

    @classmethod
    def of(cls, policy: Policy) -> _Row:
        database, name = _after_type(policy.object)
        return cls(
            policy.object,
            policy.privilege,
            _glob(policy.object),
            _glob(policy.privilege),
            database,
            name,
        )

    def allows(self, resource: str, privilege: str, database: str, name: str) -> bool:
        if _glob_match(resource, self.resource, self.resource_glob) and _glob_match(
            privilege, self.privilege, self.privilege_glob
        ):
            return True
        if database != self.database:
            return False
        if self.privilege == _ALL:
            return True
        members = _V1_MEMBERS.get(self.privilege)
        if members is None or privilege not in members:
            return False
        if self.privilege in _V1_COLLECTION_SCOPED:
            return name == ANY or self.name in (ANY, name)
        return True


@dataclass(frozen=True)
class CompiledPolicy:
    """Policy rows and user → roles, indexed by role for the matcher."""

    policies: frozenset[str] = frozenset()
    user_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _rows: Mapping[str, tuple[_Row, ...]] = field(default_factory=dict, repr=False)
    _with_public: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, policies: Iterable[str], user_roles: Mapping[str, Iterable[str]]
    ) -> CompiledPolicy:
        """Parse every row (one Milvus's casbin adapter would refuse grants nothing)."""
        kept = frozenset(policies)
        rows: dict[str, list[_Row]] = {}
        for text in kept:
            try:
                policy = Policy.parse(text)
            except RbacError:
                continue
            rows.setdefault(policy.role, []).append(_Row.of(policy))
        bound = {user: frozenset(roles) for user, roles in user_roles.items()}
        return cls(
            kept,
            bound,
            {role: tuple(found) for role, found in rows.items()},
            {user: roles | _PUBLIC_ONLY for user, roles in bound.items()},
        )

    @classmethod
    def from_snapshot(cls, snapshot: PolicySnapshot) -> CompiledPolicy:
        """The policy a full refresh (op 7) loads."""
        user_roles: dict[str, set[str]] = {}
        for user, role in snapshot.bindings:
            user_roles.setdefault(user, set()).add(role)
        return cls.build(expanded_policies(snapshot), user_roles)

    def roles_of(self, user: str) -> frozenset[str]:
        """The user's roles as the interceptor sees them: its bindings plus `public`."""
        return self._with_public.get(user, _PUBLIC_ONLY)

    def permits(self, role: str, resource: str, privilege: str) -> bool:
        """casbin `Enforce(role, resource, privilege)` under Milvus 2.6's model."""
        if role == ADMIN_ROLE:
            return True
        rows = self._rows.get(role)
        if not rows:
            return False
        database, name = _after_type(resource)
        return any(row.allows(resource, privilege, database, name) for row in rows)
