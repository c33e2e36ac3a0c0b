"""The privilege decision, Milvus 2.6's `PrivilegeInterceptor` as a pure function.

Order (privilege_interceptor.go): root passes unless it must bind roles; the caller's roles are
its bindings plus `public`; a user acting on itself (User objects) passes; SelectGrant on one of
one's own roles passes; then, per role, the single object must be permitted, or every one of a
list of objects (an empty list never is). Super users act like `admin` for user management only
(the credential RPCs), as milvus-auth's `--super-users` always did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.grants import policy_object
from milvus_auth.core.method_privilege import MethodPrivilege
from milvus_auth.proxy.authn.identity import Identity
from milvus_auth.proxy.authz.policy import CompiledPolicy

Permits = Callable[[CompiledPolicy, str, str, str], bool]


@dataclass(frozen=True)
class Bypass:
    """The callers that skip the grants: root (unless it must bind roles), super users for
    user management."""

    root_should_bind_role: bool = False
    super_users: frozenset[str] = frozenset()

    def passes(self, identity: Identity, *, user_management: bool) -> bool:
        """Whether the caller passes before any role is looked at (`user_management`: the
        call is a credential RPC)."""
        if identity.username == ROOT_USERNAME and not self.root_should_bind_role:
            return True
        return user_management and identity.username in self.super_users


def allowed(  # noqa: PLR0917  (the interceptor's hot path: no object per call)
    policy: CompiledPolicy,
    permits: Permits,
    identity: Identity,
    rule: MethodPrivilege,
    name: str,
    names: tuple[str, ...] = (),
    granted_role: str | None = None,
) -> bool:
    """Whether Milvus 2.6 lets `identity` call a method of `rule` naming `name` (and `names`;
    `granted_role`: the role a SelectGrant asks about) under `policy`."""
    if rule.object_type == "User" and identity.username == name:
        return True  # isCurUserObject
    roles = policy.roles_of(identity.username)
    if granted_role is not None and granted_role in roles:
        return True  # isSelectMyRoleGrants
    privilege = "Privilege" + rule.privilege
    database = identity.database

    def permitted(role: str, one: str) -> bool:
        return permits(policy, role, policy_object(rule.object_type, database, one), privilege)

    for role in roles:  # Milvus iterates a Go map: any order, any allow wins
        if rule.object_name_index != 0 and permitted(role, name):
            return True
        if rule.object_name_indexs != 0 and names and all(permitted(role, n) for n in names):
            return True
    return False


def denial(identity: Identity, rule: MethodPrivilege) -> str:
    """Milvus 2.6's PERMISSION_DENIED text."""
    privilege = "Privilege" + rule.privilege
    return (
        f"{privilege}: permission deny to {identity.username} in the `{identity.database}` database"
    )
