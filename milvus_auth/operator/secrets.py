"""The password, read live from its Secret, or generated into a Secret the operator owns.

A missing Secret or key is reported, never papered over: the stored record is left alone. A
Secret the operator did not create is never written to; its own generated Secret is reused
until it is deleted or `spec.rotation` changes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.core import CredentialError, validate_password
from milvus_auth.core.passwords import PasswordPolicy, WeakPassword, generate_password
from milvus_auth.operator.kube import JsonObject, KubeClient, namespaced_path
from milvus_auth.operator.resources import API_VERSION, GROUP, USER_KIND
from milvus_auth.operator.users.spec import UserSpec

WATCH_LABEL = f"{GROUP}/watch"
ROTATION_ANNOTATION = f"{GROUP}/rotation"


@dataclass(frozen=True)
class SecretPassword:
    """A usable password and the Secret version (uid/resourceVersion) it came from."""

    password: str = field(repr=False)
    version: str
    watched: bool
    regenerated: bool = False


class PasswordProblem(Exception):
    """No usable password: `reason` is the status reason (SecretNotFound, InvalidSecret, ...)."""

    def __init__(self, reason: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry


def secret_version(secret: Mapping[str, Any]) -> str:
    """`uid/resourceVersion`: changes whenever the Secret is edited or re-created."""
    meta = secret.get("metadata") or {}
    return f"{meta.get('uid') or ''}/{meta.get('resourceVersion') or ''}"


def is_watched(secret: Mapping[str, Any]) -> bool:
    """Whether edits to this Secret trigger a reconcile at once."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(WATCH_LABEL) == "true")


async def read_password(
    kube: KubeClient, spec: UserSpec, policy: PasswordPolicy | None = None
) -> SecretPassword:
    """The user's current password; raise `PasswordProblem` rather than invent one.

    A referenced Secret's password must also pass `policy` (`WeakPassword` otherwise); a
    generated one always does.
    """
    if spec.generated:
        return await _generated_password(kube, spec)
    path = namespaced_path("v1", spec.namespace, "secrets", spec.effective_secret_name)
    secret = await kube.get(path)
    if secret is None:
        raise PasswordProblem(
            "SecretNotFound", f"Secret {spec.effective_secret_name} not found", retry=True
        )
    password = _password_in(secret, spec)
    try:
        (policy or PasswordPolicy()).check(spec.username, password)
    except WeakPassword as weak:
        raise PasswordProblem(
            "WeakPassword",
            f"Secret {spec.effective_secret_name} key {spec.effective_secret_key}: {weak.rule}",
            retry=False,
        ) from None
    return SecretPassword(
        password=password, version=secret_version(secret), watched=is_watched(secret)
    )


def _password_in(secret: JsonObject, spec: UserSpec) -> str:
    key = spec.effective_secret_key
    encoded = (secret.get("data") or {}).get(key)
    plain = (secret.get("stringData") or {}).get(key)
    if encoded is None and plain is None:
        raise PasswordProblem(
            "SecretNotFound",
            f"Secret {spec.effective_secret_name} has no key {key}",
            retry=True,
        )
    try:
        password = str(plain) if encoded is None else base64.b64decode(encoded).decode("utf-8")
        validate_password(password)
    except (binascii.Error, UnicodeDecodeError, ValueError, CredentialError) as error:
        # Never the length itself: status and events are readable by more people than the
        # Secret, and a length narrows a password down.
        detail = "invalid length" if isinstance(error, CredentialError) else "not UTF-8 base64"
        raise PasswordProblem(
            "InvalidSecret",
            f"Secret {spec.effective_secret_name} key {key}: {detail}",
            retry=False,
        ) from None
    return password


async def _generated_password(kube: KubeClient, spec: UserSpec) -> SecretPassword:
    name = spec.effective_secret_name
    collection = namespaced_path("v1", spec.namespace, "secrets")
    secret = await kube.get(f"{collection}/{name}")
    if secret is None:
        created = await kube.create(collection, _generated_secret(spec))
        return _from_generated(created, spec, regenerated=True)
    if not _owned_by(secret, spec):
        raise PasswordProblem(
            "Conflict",
            f"Secret {name} exists and is not owned by this MilvusUser; "
            "delete it or set spec.passwordSecretRef",
            retry=False,
        )
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ROTATION_ANNOTATION, "") == spec.rotation:
        try:
            return _from_generated(secret, spec, regenerated=False)
        except PasswordProblem:
            pass  # an owned Secret with a broken password is regenerated, like a deleted one
    fresh = _generated_secret(spec)
    patch = {"metadata": {"annotations": fresh["metadata"]["annotations"]}, "data": fresh["data"]}
    patched = await kube.patch(f"{collection}/{name}", patch)
    return _from_generated(patched, spec, regenerated=True)


def _from_generated(secret: JsonObject, spec: UserSpec, *, regenerated: bool) -> SecretPassword:
    return SecretPassword(
        password=_password_in(secret, spec),
        version=secret_version(secret),
        watched=True,
        regenerated=regenerated,
    )


def _owned_by(secret: JsonObject, spec: UserSpec) -> bool:
    owners = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("uid") == spec.uid and owner.get("kind") == USER_KIND for owner in owners)


def _generated_secret(spec: UserSpec) -> JsonObject:
    password = generate_password(spec.username)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec.effective_secret_name,
            "namespace": spec.namespace,
            "labels": {
                **spec.secret_labels,
                WATCH_LABEL: "true",
                "app.kubernetes.io/managed-by": "milvus-auth",
            },
            "annotations": {**spec.secret_annotations, ROTATION_ANNOTATION: spec.rotation},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": USER_KIND,
                    "name": spec.name,
                    "uid": spec.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {
            "username": _b64(spec.username),
            "password": _b64(password),
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")
