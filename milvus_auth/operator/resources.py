"""The operator's custom resources: API group, version, plurals and kinds, spelled once, and
what every kind's spec parses alike (identity, deletion policy, the username it names)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypedDict

from milvus_auth.core import CredentialError, validate_username

GROUP = "auth.milvus.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
USER_PLURAL = "milvususers"
USER_KIND = "MilvusUser"
ROLE_PLURAL = "milvusroles"


class DeletionPolicy(enum.StrEnum):
    """What deleting the resource does to what it manages in Milvus."""

    DELETE = "Delete"
    RETAIN = "Retain"

    @classmethod
    def parse(cls, value: Any) -> DeletionPolicy:
        """The CRD's default (Delete) for anything the schema would not have let through."""
        return cls(value) if value in set(cls) else cls.DELETE


class Identity(TypedDict):
    """The metadata every parsed spec carries."""

    namespace: str
    name: str
    uid: str
    generation: int


def identity(body: Mapping[str, Any]) -> Identity:
    """namespace, name, uid and generation of a raw body; missing ones empty (or 0)."""
    meta = body.get("metadata") or {}
    return Identity(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
    )


def username_problem(username: str) -> str | None:
    """Why `spec.username` cannot name a Milvus user (InvalidSpec), or None."""
    try:
        valid = validate_username(username)
    except CredentialError as error:
        return f"spec.username: {error.reason}"
    if valid != username:
        return "spec.username must not have leading or trailing spaces"
    return None
