"""Milvus's rules for usernames and passwords (proxy/validate_util.go), with its texts.

Go's formatting bug in the length message (`%!d(string=32)`) is not reproduced: the number is
printed as a number.
"""

from __future__ import annotations

from collections.abc import Collection

from milvus_auth.core.errors import (
    InvalidParameter,
    PrivilegeNotPermitted,
    UserExists,
    UserLimitReached,
)

ROOT_USERNAME = "root"
DEFAULT_ROOT_PASSWORD = "Milvus"  # noqa: S105  (Milvus's documented default, for dev only)
MAX_USERNAME_LENGTH = 32
MIN_PASSWORD_LENGTH = 6
DEFAULT_MAX_USERS = 100  # Milvus's proxy.maxUserNum
MAX_PASSWORD_LENGTH = 72  # bcrypt ignores bytes past 72, so Milvus refuses them
# Milvus accepts `.` and `-` after the first character since mid-2025.
_USERNAME_TAIL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# The same rule as a regular expression, for the CRD schema and other declarative checks.
USERNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$"


def validate_username(raw: str) -> str:
    """Return the trimmed username, or raise `InvalidParameter` with Milvus's reason."""
    username = raw.strip()
    if not username:
        raise InvalidParameter("username must be not empty")
    size = len(username.encode())
    if size > MAX_USERNAME_LENGTH:
        raise InvalidParameter(
            f"invalid username {username} with length {size}, "
            f"the length of username must be less than {MAX_USERNAME_LENGTH}"
        )
    first = username[0]
    if first not in _LETTERS:
        raise InvalidParameter(
            f"invalid user name {username}, the first character must be a letter, but got {first}"
        )
    for char in username[1:]:
        if char not in _USERNAME_TAIL:
            raise InvalidParameter(
                f"invalid user name {username}, the user name can only include underscore, "
                f"letters and numbers, but got {char}"
            )
    return username


def validate_password(password: str) -> None:
    """Raise `InvalidParameter` unless the password is 6..72 bytes long (UTF-8)."""
    size = len(password.encode())
    if not MIN_PASSWORD_LENGTH <= size <= MAX_PASSWORD_LENGTH:
        raise InvalidParameter(
            "invalid password length",
            f"{size} out of range {MIN_PASSWORD_LENGTH} <= value <= {MAX_PASSWORD_LENGTH}",
        )


def ensure_creatable(username: str, existing: Collection[str], *, max_users: int | None) -> None:
    """A new user needs a free name and, under a limit, room: Milvus's RootCoord refuses
    `len(existing) >= maxUserNum` (root counts, as it has a record)."""
    if username in existing:
        raise UserExists(username)
    if max_users is not None and len(existing) >= max_users:
        raise UserLimitReached


def ensure_deletable(username: str) -> None:
    """Root can never be deleted, whoever asks (Milvus's rule)."""
    if username == ROOT_USERNAME:
        raise PrivilegeNotPermitted("root user cannot be deleted")
