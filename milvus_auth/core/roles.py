"""Roles: Milvus's name rules, the built-in roles, and the proxies' policy-cache operations.

Name rules are the proxy's `validateName` (milvus-io/milvus internal/proxy/util.go, 2.4+ with
merr texts, the same words Milvus 2.3.5 answers). Cache operations are `typeutil.CacheOpType`
with the op keys RootCoord sends in `RefreshPolicyInfoCache` (pkg/util/funcutil/policy.go).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from milvus_auth.core.credentials import ROOT_USERNAME
from milvus_auth.core.errors import InvalidParameter, PrivilegeNotPermitted, RbacError

ADMIN_ROLE = "admin"
PUBLIC_ROLE = "public"
DEFAULT_ROLES = frozenset({ADMIN_ROLE, PUBLIC_ROLE})
MAX_NAME_LENGTH = 255  # proxy.maxNameLength
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")


def validate_name(raw: str, kind: str = "role name") -> str:
    """Return the trimmed name, or raise `InvalidParameter` with Milvus's reason.

    Milvus checks bytes: a letter or `_` first, then letters, digits, `_` and `$`, at most 255.
    `kind` names the thing in the message (`role name`, `object name`, ...), as Milvus does.
    """
    name = raw.strip()
    if not name:
        raise InvalidParameter(f"{kind} should be not empty", "expected=not empty][actual=")
    data = name.encode()
    if len(data) > MAX_NAME_LENGTH:
        raise InvalidParameter(
            f"the length of {kind} must be not greater than limit",
            f"{len(data)} out of range 0 <= value <= {MAX_NAME_LENGTH}",
        )
    if chr(data[0]) not in _LETTERS and data[0] != ord("_"):
        raise InvalidParameter(
            f"the first character of {kind} must be an underscore or letter",
            f"expected={ord('_')}][actual={data[0]}",
        )
    for index, byte in enumerate(data[1:], start=1):
        char = chr(byte)  # Go's %c of one byte of a multi-byte character
        if char not in _LETTERS and char not in _DIGITS and char not in "_$":
            raise InvalidParameter(
                f"{kind} can only contain numbers, letters, dollars and underscores, "
                f"found {char} at {index}"
            )
    return name


def validate_role_name(raw: str) -> str:
    """`ValidateRoleName`."""
    return validate_name(raw, "role name")


def validate_object_name(raw: str) -> str:
    """`ValidateObjectName`: `*` or a valid name."""
    return raw if raw == "*" else validate_name(raw, "object name")


def ensure_managed(role: str) -> None:
    """Refuse `admin` (hard-wired in Milvus) and `public` (re-granted at every Milvus start)."""
    if role in DEFAULT_ROLES:
        raise PrivilegeNotPermitted(f"the role[{role}] is a default role, which can't be dropped")


class CacheOp(IntEnum):
    """The `opType` of `RefreshPolicyInfoCache`."""

    ADD_USER_TO_ROLE = 1
    REMOVE_USER_FROM_ROLE = 2
    GRANT_PRIVILEGE = 3
    REVOKE_PRIVILEGE = 4
    DELETE_USER = 5
    DROP_ROLE = 6
    REFRESH = 7


@dataclass(frozen=True)
class CacheRefresh:
    """One `RefreshPolicyInfoCache` request: what RootCoord sends after an RBAC change."""

    op: CacheOp
    key: str = ""

    @classmethod
    def user_role(cls, op: CacheOp, user: str, role: str) -> CacheRefresh:
        """Ops 1 and 2: the key is `<user>/<role>` (`EncodeUserRoleCache`)."""
        return cls(op, f"{user}/{role}")

    @classmethod
    def policies(cls, op: CacheOp, policies: list[str]) -> CacheRefresh:
        """Ops 3 and 4: policy JSON strings joined by `|` (`PolicyForPrivileges`, 2.5+)."""
        return cls(op, "|".join(policies))

    def user_and_role(self) -> tuple[str, str]:
        """The user and role of an op 1/2 key (`DecodeUserRoleCache`: split at the last `/`)."""
        user, slash, role = self.key.rpartition("/")
        if not slash:
            raise RbacError(f"invalid param, cache: [{self.key}]")
        return user, role

    def policy_texts(self) -> list[str]:
        """The policy JSON strings of an op 3/4 key (one in 2.4, several in 2.5+)."""
        return self.key.split("|")


def parse_cache_refresh(op_type: int, op_key: str) -> CacheRefresh:
    """Validate a request as Milvus's proxy does: a known op, and a key unless it is op 7."""
    try:
        op = CacheOp(op_type)
    except ValueError:
        raise RbacError(f"invalid opType, op_type: {op_type}, op_key: {op_key}") from None
    if op is not CacheOp.REFRESH and not op_key:
        raise RbacError(f"empty op key, op_type: {op_type}")
    return CacheRefresh(op, op_key)


def ensure_managed_binding(user: str, role: str) -> None:
    """Root's roles are Milvus's business (root bypasses RBAC); so are the default roles."""
    if user == ROOT_USERNAME:
        raise PrivilegeNotPermitted("the roles of root are not managed by milvus-auth")
    ensure_managed(role)
