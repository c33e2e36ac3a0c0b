"""Which namespaces may ask for what: the privileged-namespace rule, decided purely.

Anyone who may create a MilvusUser or MilvusRole in some namespace must not thereby become
Milvus root, take over a user or role someone else made, or hand out Milvus's cluster-wide
powers. Those requests are privileges, granted only to resources in the operator's
`--privileged-namespaces` (by default the operator's own namespace). `--namespace-databases`
further confines the grants a listed namespace may declare to its own databases. Every kind of
resource asks here, so the rules and their wording live in one place.

Which privileges count as elevated is derived from Milvus's privilege levels
(`core.privileges`), not hand-picked: a privilege is elevated when it sits at the cluster level
(`ClusterAdmin`'s members: ownership, user updates, RBAC backup and restore, databases,
resource groups...), when it is `*` or `All`, or when it is a group with such a member.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from milvus_auth.core.privileges import (
    ANY,
    BUILTIN_GROUPS,
    V1_GROUPS,
    PrivilegeLevel,
    privilege_level,
)

PRIVILEGED_FLAG = "--privileged-namespaces"
DATABASES_FLAG = "--namespace-databases"
_EVERYTHING = frozenset({ANY, "All"})


class Privilege(enum.Enum):
    """Something only a resource in a privileged namespace may ask for (value: what, in words)."""

    ALLOW_ROOT = "set spec.allowRoot"
    ADOPT_USER = "manage a Milvus user that the operator did not create"
    ADOPT_ROLE = "manage a Milvus role that the operator did not create"
    BIND_ADMIN = "bind the admin role"
    BIND_ELEVATED = "bind a role holding cluster-level or ownership privileges"
    GRANT_ELEVATED = "grant cluster-level or ownership privileges"
    KEY_FOR_UNCLAIMED = "issue an API key for a user no MilvusUser of its namespace manages"
    KEY_FOR_ELEVATED = "issue an API key for root or a user bound to an elevated role"


def elevated(privilege: str, custom_groups: Mapping[str, Sequence[str]]) -> bool:
    """Whether granting `privilege` (an API name or group) gives a cluster-level power."""
    if privilege in _EVERYTHING:
        return True
    members = (
        custom_groups.get(privilege)
        or BUILTIN_GROUPS.get(privilege)
        or V1_GROUPS.get(privilege)
        or (privilege,)
    )
    return any(
        member in _EVERYTHING or privilege_level(member) is PrivilegeLevel.CLUSTER
        for member in members
    )


def parse_namespace_databases(text: str) -> Mapping[str, frozenset[str]]:
    """`team-a=analytics,shared;team-b=ml` → {team-a: {analytics, shared}, team-b: {ml}};
    raises ValueError naming the bad entry (`*` is never a namespace's database)."""
    parsed: dict[str, frozenset[str]] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        namespace, sep, names = entry.partition("=")
        databases = frozenset(name.strip() for name in names.split(",") if name.strip())
        if not sep or not namespace.strip() or not databases or ANY in databases:
            raise ValueError(f"{DATABASES_FLAG}: expected namespace=db[,db...], got {entry!r}")
        if namespace.strip() in parsed:
            raise ValueError(f"{DATABASES_FLAG}: namespace {namespace.strip()} is listed twice")
        parsed[namespace.strip()] = databases
    return MappingProxyType(parsed)


@dataclass(frozen=True)
class Permissions:
    """The operator's privileged namespaces (exact names) and per-namespace databases."""

    privileged_namespaces: frozenset[str] = frozenset()
    namespace_databases: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def privileged(self, namespace: str) -> bool:
        """Whether resources in `namespace` hold every privilege."""
        return namespace in self.privileged_namespaces

    def refusal(self, namespace: str, wanted: Iterable[Privilege]) -> str | None:
        """Why a resource in `namespace` may not have `wanted` (naming the rule), or None."""
        if self.privileged(namespace):
            return None
        refused = list(dict.fromkeys(privilege.value for privilege in wanted))
        if not refused:
            return None
        return (
            f"only resources in a privileged namespace ({PRIVILEGED_FLAG} of the operator) may "
            f"{' or '.join(refused)}; namespace {namespace} is not privileged"
        )

    def database_refusal(self, namespace: str, databases: Collection[str]) -> str | None:
        """Why grants from `namespace` may not name `databases` (naming the rule), or None.

        Namespaces not listed in `--namespace-databases` are not confined; a listed one may
        name only its databases, never `*`.
        """
        allowed = self.namespace_databases.get(namespace)
        if allowed is None:
            return None
        outside = sorted(set(databases) - allowed)
        if not outside:
            return None
        return (
            f"grants from namespace {namespace} may name only the databases "
            f"{', '.join(sorted(allowed))} ({DATABASES_FLAG} of the operator), not "
            f"{', '.join(outside)}"
        )
