"""A MilvusUser's spec, parsed once from its raw body into typed values.

Parsing is tolerant: a wrong type becomes a value that `decide.check_spec` refuses with a
clear reason (or binds nothing), never a crash in a handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.operator.resources import DeletionPolicy, identity

DEFAULT_SECRET_KEY = "password"  # noqa: S105  (a key name, not a password)
GENERATED_SECRET_SUFFIX = "-milvus-credentials"  # noqa: S105  (a name suffix)


@dataclass(frozen=True)
class UserSpec:
    """A MilvusUser's identity and spec, parsed from its raw body."""

    namespace: str
    name: str
    uid: str
    generation: int
    username: str
    secret_name: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    allow_root: bool = False
    rotation: str = ""
    secret_labels: Mapping[str, str] = field(default_factory=dict)
    secret_annotations: Mapping[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] | None = None
    """`spec.roles`: the user's Milvus roles (authoritative); None leaves mappings alone."""

    @property
    def owner(self) -> str:
        """The claim owner: namespace/name, stable across re-creations of the resource."""
        return f"{self.namespace}/{self.name}"

    @property
    def generated(self) -> bool:
        """Whether the operator generates the password (no passwordSecretRef)."""
        return self.secret_name is None

    @property
    def effective_secret_name(self) -> str:
        """The Secret holding the password: the referenced one, or the generated one."""
        return self.secret_name or f"{self.name}{GENERATED_SECRET_SUFFIX}"

    @property
    def effective_secret_key(self) -> str:
        """The key in that Secret."""
        return self.secret_key if self.secret_name else DEFAULT_SECRET_KEY

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> UserSpec:
        """Parse tolerantly: a wrong type becomes a value `check_spec` refuses, not a crash."""
        spec = body.get("spec") or {}
        ref = spec.get("passwordSecretRef") or None
        template = spec.get("secretTemplate") or {}
        return cls(
            **identity(body),
            username=str(spec.get("username") or ""),
            secret_name=str(ref.get("name") or "") if isinstance(ref, Mapping) else None,
            secret_key=str(ref.get("key") or DEFAULT_SECRET_KEY)
            if isinstance(ref, Mapping)
            else DEFAULT_SECRET_KEY,
            deletion_policy=DeletionPolicy.parse(spec.get("deletionPolicy")),
            allow_root=spec.get("allowRoot") is True,
            rotation=str(spec.get("rotation") or ""),
            secret_labels=_strings(template.get("labels")),
            secret_annotations=_strings(template.get("annotations")),
            roles=_roles(spec.get("roles")),
        )


def _roles(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return ()  # a wrong type binds nothing rather than something
    return tuple(sorted({str(role) for role in value}))


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}
