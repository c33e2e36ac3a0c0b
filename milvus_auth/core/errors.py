"""The domain's error family, carrying Milvus's error codes and reason texts.

Each error knows the `common.Status.code` and `reason` stock Milvus would answer with, so the
proxy can return it to pymilvus byte for byte and the CLI can print the same message.
"""

from __future__ import annotations

# Milvus merr codes (pkg/util/merr/errors.go).
CODE_PARAMETER_INVALID = 1100
CODE_NOT_AUTHENTICATED = 1400
CODE_PRIVILEGE_NOT_PERMITTED = 1401
CODE_UNEXPECTED = 65535


class MilvusError(Exception):
    """Anything Milvus would refuse; `code` and `reason` are what its `common.Status` carries."""

    code: int = CODE_UNEXPECTED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CredentialError(MilvusError):
    """A request about a credential that Milvus would refuse; `reason` is Milvus's text."""


class InvalidParameter(CredentialError):
    """A username or password that breaks Milvus's rules."""

    code = CODE_PARAMETER_INVALID

    def __init__(self, message: str, detail: str = "") -> None:
        suffix = f"[{detail}]" if detail else ""
        super().__init__(f"{message}: invalid parameter{suffix}")


class UserExists(CredentialError):
    """Creating a user that already has a record."""

    def __init__(self, username: str) -> None:
        super().__init__(f"user already exists: {username}")


class UserLimitReached(CredentialError):
    """Creating one user more than the limit (Milvus's `proxy.maxUserNum`) allows; Milvus
    2.3's RootCoord text and code (a plain error, so 65535)."""

    def __init__(self) -> None:
        super().__init__("unable to add user because the number of users has reached the limit")


class UserNotFound(CredentialError):
    """Reading or changing a user that has no record."""

    def __init__(self, username: str) -> None:
        super().__init__(f"user not found: {username}")


class OldPasswordMismatch(CredentialError):
    """`UpdateCredential` with an old password that does not verify."""

    code = CODE_NOT_AUTHENTICATED

    def __init__(self, username: str) -> None:
        super().__init__(f"old password not correct for {username}: not authenticated")


class PrivilegeNotPermitted(CredentialError):
    """An operation the caller (or nobody, for deleting root) may not perform."""

    code = CODE_PRIVILEGE_NOT_PERMITTED

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}: privilege not permitted")


class MalformedRecord(CredentialError):
    """A stored value that is not a credential record this layout can read."""

    def __init__(self, key: str) -> None:
        super().__init__(f"malformed credential record at {key}")


class RbacError(MilvusError):
    """A role, grant or privilege request Milvus refuses with a plain error (code 65535)."""


class RoleExists(RbacError):
    """Creating a role that exists (the text is Milvus 2.3.5's, proto text of the entity)."""

    def __init__(self, role: str) -> None:
        super().__init__(f'role [name:"{role}"] already exists')
        self.role = role


class RoleNotFound(RbacError):
    """Dropping, granting to or binding a role that has no record."""

    def __init__(self, role: str) -> None:
        super().__init__(
            "not found the role, maybe the role isn't existed or internal system error"
        )
        self.role = role


class RoleHasGrants(RbacError):
    """Dropping a role that still holds grants, without `force_drop`."""

    def __init__(self, role: str) -> None:
        super().__init__(
            "fail to drop the role that it has privileges. Use REVOKE API to revoke privileges"
        )
        self.role = role


class GranteeNotFound(RbacError):
    """Binding a role to, or granting as, a user that has no credential record."""

    def __init__(self, username: str) -> None:
        super().__init__(
            "not found the user, maybe the user isn't existed or internal system error"
        )
        self.username = username
