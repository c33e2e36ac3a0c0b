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
class Request:
    """What a check knows of one call: the rule of its method and the names it read."""

    rule: MethodPrivilege
    name: str
    names: tuple[str, ...] = ()
    granted_role: str | None = None
    user_management: bool = False


@dataclass(frozen=True)
class Bypass:
    """The callers that skip the grants: root (unless it must bind roles), super users for
    user management."""

    root_should_bind_role: bool = False
    super_users: frozenset[str] = frozenset()

    def passes(self, identity: Identity, request: Request) -> bool:
        """Whether the caller passes before any role is looked at."""
        if identity.username == ROOT_USERNAME and not self.root_should_bind_role:
            return True
        return request.user_management and identity.username in self.super_users


def allowed(policy: CompiledPolicy, permits: Permits, identity: Identity, request: Request) -> bool:
    """Whether Milvus 2.6 lets `identity` make `request` under `policy`."""
    rule = request.rule
    if rule.object_type == "User" and identity.username == request.name:
        return True  # isCurUserObject
    roles = policy.roles_of(identity.username)
    if request.granted_role is not None and request.granted_role in roles:
        return True  # isSelectMyRoleGrants
    privilege = "Privilege" + rule.privilege
    database = identity.database

    def permitted(role: str, name: str) -> bool:
        return permits(policy, role, policy_object(rule.object_type, database, name), privilege)

    for role in sorted(roles):
        if rule.object_name_index != 0 and permitted(role, request.name):
            return True
        if (
            rule.object_name_indexs != 0
            and request.names
            and all(permitted(role, name) for name in request.names)
        ):
            return True
    return False


def denial(identity: Identity, request: Request) -> str:
    """Milvus 2.6's PERMISSION_DENIED text."""
    privilege = "Privilege" + request.rule.privilege
    return (
        f"{privilege}: permission deny to {identity.username} in the `{identity.database}` database"
    )
