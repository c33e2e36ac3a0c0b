"""The pure domain: Milvus's credential rules, hashing and etcd layouts. No I/O here."""

from milvus_auth.core.credentials import (
    DEFAULT_ROOT_PASSWORD,
    ROOT_USERNAME,
    USERNAME_PATTERN,
    ensure_creatable,
    ensure_deletable,
    validate_password,
    validate_username,
)
from milvus_auth.core.errors import (
    CredentialError,
    InvalidParameter,
    MalformedRecord,
    OldPasswordMismatch,
    PrivilegeNotPermitted,
    UserExists,
    UserLimitReached,
    UserNotFound,
)
from milvus_auth.core.hashing import (
    DEFAULT_BCRYPT_COST,
    cache_digest,
    digests_equal,
    hash_password,
    verify_password,
)
from milvus_auth.core.layout import DEFAULT_META_ROOT, CredentialRecord, KeyLayout, LayoutName

__all__ = [
    "DEFAULT_BCRYPT_COST",
    "DEFAULT_META_ROOT",
    "DEFAULT_ROOT_PASSWORD",
    "ROOT_USERNAME",
    "USERNAME_PATTERN",
    "CredentialError",
    "CredentialRecord",
    "InvalidParameter",
    "KeyLayout",
    "LayoutName",
    "MalformedRecord",
    "OldPasswordMismatch",
    "PrivilegeNotPermitted",
    "UserExists",
    "UserLimitReached",
    "UserNotFound",
    "cache_digest",
    "digests_equal",
    "ensure_creatable",
    "ensure_deletable",
    "hash_password",
    "validate_password",
    "validate_username",
    "verify_password",
]
