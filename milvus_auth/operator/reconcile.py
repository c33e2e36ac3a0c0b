"""Decide what a MilvusUser needs: pure functions over the desired and the observed state.

Nothing here does I/O; `apply.py` gathers the inputs, calls these and performs the result.
The rules (issue 4): write the etcd record only when the applied password version changed,
the record is missing, or the record changed behind the operator's back (its revision differs
and bcrypt says the password no longer matches); never delete root; skip deleting users the
operator never wrote, did not create (adopted) or that another MilvusUser owns. Setting
`allowRoot` and managing a user that existed before its claim are privileges (issue 10).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.core import ROOT_USERNAME, CredentialError, validate_username
from milvus_auth.operator.permissions import Privilege
from milvus_auth.store.claims import Claim, Origin

GROUP = "auth.milvus.io"
VERSION = "v1alpha1"
PLURAL = "milvususers"
KIND = "MilvusUser"
DEFAULT_SECRET_KEY = "password"  # noqa: S105  (a key name, not a password)
GENERATED_SECRET_SUFFIX = "-milvus-credentials"  # noqa: S105  (a name suffix)


class DeletionPolicy(enum.StrEnum):
    """What deleting the MilvusUser does to the Milvus user."""

    DELETE = "Delete"
    RETAIN = "Retain"


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
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        ref = spec.get("passwordSecretRef") or None
        template = spec.get("secretTemplate") or {}
        policy = spec.get("deletionPolicy") or DeletionPolicy.DELETE.value
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            username=str(spec.get("username") or ""),
            secret_name=str(ref.get("name") or "") if isinstance(ref, Mapping) else None,
            secret_key=str(ref.get("key") or DEFAULT_SECRET_KEY)
            if isinstance(ref, Mapping)
            else DEFAULT_SECRET_KEY,
            deletion_policy=DeletionPolicy(policy)
            if policy in set(DeletionPolicy)
            else DeletionPolicy.DELETE,
            allow_root=spec.get("allowRoot") is True,
            rotation=str(spec.get("rotation") or ""),
            secret_labels=_strings(template.get("labels")),
            secret_annotations=_strings(template.get("annotations")),
            roles=_roles(spec.get("roles")),
        )


@dataclass(frozen=True)
class Applied:
    """What the operator last applied, as recorded in the resource's status."""

    password_version: str | None = None
    record_revision: int | None = None
    ready: bool = False

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Applied:
        """Read `passwordVersion`, `recordRevision` and the Ready condition."""
        status = status or {}
        revision = status.get("recordRevision")
        conditions = status.get("conditions") or []
        ready = any(
            isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in conditions
        )
        return cls(
            password_version=status.get("passwordVersion") or None,
            record_revision=int(revision) if isinstance(revision, int) else None,
            ready=ready,
        )


def check_spec(spec: UserSpec) -> str | None:
    """Why the spec can never work (InvalidSpec), or None."""
    if spec.secret_name == "":
        return "spec.passwordSecretRef.name must not be empty"
    try:
        username = validate_username(spec.username)
    except CredentialError as error:
        return f"spec.username: {error.reason}"
    if username != spec.username:
        return "spec.username must not have leading or trailing spaces"
    if username == ROOT_USERNAME and not spec.allow_root:
        return "spec.username root is refused unless spec.allowRoot is true"
    return None


def needed_privileges(spec: UserSpec, *, claim: Claim | None, exists: bool) -> list[Privilege]:
    """The privileges this reconcile asks for, given the username's claim and whether a record
    exists: adopting means claiming a user that exists unclaimed, or keeping an adopted one."""
    needed = []
    if spec.allow_root:
        needed.append(Privilege.ALLOW_ROOT)
    adopting = exists if claim is None else claim.origin is Origin.ADOPTED
    if adopting and (claim is None or claim.owner == spec.owner):
        needed.append(Privilege.ADOPT_USER)
    return needed


def new_claim(spec: UserSpec, *, exists: bool) -> Claim:
    """The claim to take on a username nobody holds: adopted when its record already exists."""
    return Claim(spec.owner, Origin.ADOPTED if exists else Origin.CREATED)


class Write(enum.Enum):
    """What to do with the etcd record."""

    NONE = "none"
    CREATE = "create"
    UPDATE = "update"
    VERIFY = "verify"  # someone else wrote it: update only if bcrypt says it no longer matches


def decide_write(
    *,
    applied: Applied,
    secret_version: str,
    regenerated: bool,
    stored_revision: int | None,
) -> Write:
    """The record action for one reconcile; VERIFY is the only case that may need bcrypt."""
    if stored_revision is None:
        return Write.CREATE
    if regenerated or applied.password_version != secret_version:
        return Write.UPDATE
    if applied.record_revision != stored_revision:
        return Write.VERIFY
    return Write.NONE


def decide_notify(*, wrote: bool, applied: Applied) -> bool:
    """Push the cache digest to the proxies after a write, or until they all confirmed one."""
    return wrote or not applied.ready


class Removal(enum.Enum):
    """What deleting the resource does to the Milvus user."""

    DELETE = "delete"
    KEEP_ROOT = "root is never deleted"
    RETAIN = "deletionPolicy is Retain"
    NEVER_WRITTEN = "the operator never wrote this user"
    NOT_OWNED = "another MilvusUser owns this username"
    NOT_CLAIMED = "this MilvusUser never claimed the username"
    ADOPTED = "the user existed before the operator adopted it"


def decide_removal(spec: UserSpec, applied: Applied, *, claim: Claim | None) -> Removal:
    """Whether deleting the resource deletes the Milvus user; only DELETE touches etcd.

    Only a user this MilvusUser's claim says the operator created is deleted: the status (which
    a tenant might be able to write) alone never leads to a deletion.
    """
    if spec.username == ROOT_USERNAME:
        return Removal.KEEP_ROOT
    if spec.deletion_policy is DeletionPolicy.RETAIN:
        return Removal.RETAIN
    if claim is None:
        return Removal.NOT_CLAIMED
    if claim.owner != spec.owner:
        return Removal.NOT_OWNED
    if claim.origin is Origin.ADOPTED:
        return Removal.ADOPTED
    if applied.record_revision is None:
        return Removal.NEVER_WRITTEN
    return Removal.DELETE


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
