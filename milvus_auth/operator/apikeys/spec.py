"""A MilvusAPIKey's spec, parsed once from its raw body into typed values.

Durations are Go-style strings (`720h`, `1h30m`); one that does not parse is kept as the
`problem` this spec carries, refused as `InvalidSpec` naming the field, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.core.apikeys import parse_duration

PLURAL = "milvusapikeys"
KIND = "MilvusAPIKey"
SECRET_SUFFIX = "-milvus-api-key"  # noqa: S105  (a name suffix)
DEFAULT_GRACE = 3600.0


@dataclass(frozen=True)
class ApiKeySpec:
    """A MilvusAPIKey's identity and spec; durations in seconds."""

    namespace: str
    name: str
    uid: str
    generation: int
    username: str
    expires_after: float | None = None
    rotation: str = ""
    grace: float = DEFAULT_GRACE
    rotate_every: float | None = None
    secret_labels: Mapping[str, str] = field(default_factory=dict)
    secret_annotations: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    """Why a field could not be parsed (InvalidSpec), or None."""

    @property
    def owner(self) -> str:
        """`namespace/name`: the owner written into each key record it issues."""
        return f"{self.namespace}/{self.name}"

    @property
    def secret_name(self) -> str:
        """The Secret the key is written into."""
        return f"{self.name}{SECRET_SUFFIX}"

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ApiKeySpec:
        """Parse the body as the API server stored it (defaults applied)."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        template = spec.get("secretTemplate") or {}
        problems: list[str] = []
        expires = _duration(spec, "expiresAfter", problems)
        grace = _duration(spec, "rotationGracePeriod", problems)
        every = _duration(spec, "rotateEvery", problems)
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            username=str(spec.get("username") or ""),
            expires_after=expires,
            rotation=str(spec.get("rotation") or ""),
            grace=DEFAULT_GRACE if grace is None else grace,
            rotate_every=every,
            secret_labels=_strings(template.get("labels")),
            secret_annotations=_strings(template.get("annotations")),
            problem="; ".join(problems) or None,
        )


def _duration(spec: Mapping[str, Any], key: str, problems: list[str]) -> float | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    try:
        return parse_duration(str(value))
    except ValueError as error:
        problems.append(f"spec.{key}: {error}")
        return None


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}
