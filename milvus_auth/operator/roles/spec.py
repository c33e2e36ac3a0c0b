"""A MilvusRole's spec, parsed once from its raw body into typed values.

Parsing is tolerant: a wrong type becomes a value that `decide.check_role` refuses with a
clear reason, never a crash in a handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from milvus_auth.core.grants import DEFAULT_DB
from milvus_auth.core.privileges import ANY
from milvus_auth.operator.resources import DeletionPolicy, identity


@dataclass(frozen=True)
class GrantSpec:
    """One `spec.grants[]` entry: privileges (or groups) on a database and collection."""

    privileges: tuple[str, ...]
    database: str = DEFAULT_DB
    collection: str = ANY


@dataclass(frozen=True)
class RoleSpec:
    """A MilvusRole's identity and spec."""

    namespace: str
    name: str
    uid: str
    generation: int
    role: str
    grants: tuple[GrantSpec, ...] = ()
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE

    @property
    def owner(self) -> str:
        """The claim owner: namespace/name, stable across re-creations of the resource."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RoleSpec:
        """Parse the body as the API server stored it (defaults applied)."""
        spec = body.get("spec") or {}
        raw_grants = spec.get("grants") or []
        grants = tuple(
            GrantSpec(
                privileges=tuple(str(p) for p in entry.get("privileges") or []),
                database=str(entry.get("database") or DEFAULT_DB),
                collection=str(entry.get("collection") or ANY),
            )
            for entry in raw_grants
            if isinstance(entry, Mapping)
        )
        return cls(
            **identity(body),
            role=str(spec.get("roleName") or ""),
            grants=grants,
            deletion_policy=DeletionPolicy.parse(spec.get("deletionPolicy")),
        )
