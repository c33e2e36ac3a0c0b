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


class CredentialError(Exception):
    """A request about a credential that Milvus would refuse; `reason` is Milvus's text."""

    code: int = CODE_UNEXPECTED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
