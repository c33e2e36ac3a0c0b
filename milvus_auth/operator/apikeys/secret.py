"""The Secret `<name>-milvus-api-key`: read into a `SecretView`, written only when the
MilvusAPIKey owns it (keys `token`, `username`, `expiresAt`).

The Secret carries `auth.milvus.io/watch: "true"` (so the operator's Secret watch, selected
by that label on the API server, sees it deleted) and `auth.milvus.io/api-key: "true"`; its
owner reference names the resource.
Nothing read here is logged: the token is a credential.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from milvus_auth.core.apikeys import ApiKey, InvalidApiKey, parse_api_key
from milvus_auth.operator.apikeys.decide import SecretView
from milvus_auth.operator.apikeys.report import timestamp
from milvus_auth.operator.apikeys.spec import KIND, ApiKeySpec
from milvus_auth.operator.kube import JsonObject, KubeClient, namespaced_path
from milvus_auth.operator.resources import GROUP, VERSION
from milvus_auth.operator.secrets import ROTATION_ANNOTATION, WATCH_LABEL

API_KEY_LABEL = f"{GROUP}/api-key"
TOKEN_KEY = "token"  # noqa: S105  (a key name)


def secret_path(spec: ApiKeySpec) -> str:
    """The API path of the resource's Secret."""
    return namespaced_path("v1", spec.namespace, "secrets", spec.secret_name)


def secret_view(secret: JsonObject | None, spec: ApiKeySpec) -> SecretView:
    """What the Secret (None: absent) holds, as far as deciding goes."""
    if secret is None:
        return SecretView()
    meta = secret.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    owned = any(o.get("uid") == spec.uid and o.get("kind") == KIND for o in owners)
    annotations = meta.get("annotations") or {}
    return SecretView(
        exists=True,
        owned=owned,
        rotation=str(annotations.get(ROTATION_ANNOTATION, "")),
        key=_key_in(secret),
    )


def _key_in(secret: JsonObject) -> ApiKey | None:
    encoded = (secret.get("data") or {}).get(TOKEN_KEY)
    if not isinstance(encoded, str):
        return None
    try:
        return parse_api_key(base64.b64decode(encoded, validate=True).decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, InvalidApiKey):
        return None


async def write_secret(
    kube: KubeClient, spec: ApiKeySpec, key: ApiKey, *, expires_at: int | None, exists: bool
) -> None:
    """Put `key` into the Secret: create it, or patch the one this resource owns."""
    body = _secret_body(spec, key, expires_at)
    if exists:
        meta = body["metadata"]
        change = {"metadata": {k: meta[k] for k in ("labels", "annotations")}, "data": body["data"]}
        await kube.patch(secret_path(spec), change)
    else:
        await kube.create(namespaced_path("v1", spec.namespace, "secrets"), body)


def _secret_body(spec: ApiKeySpec, key: ApiKey, expires_at: int | None) -> JsonObject:
    owner: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": spec.name,
        "uid": spec.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = {
        **spec.secret_labels,
        WATCH_LABEL: "true",
        API_KEY_LABEL: "true",
        "app.kubernetes.io/managed-by": "milvus-auth",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec.secret_name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {**spec.secret_annotations, ROTATION_ANNOTATION: spec.rotation},
            "ownerReferences": [owner],
        },
        "data": {
            TOKEN_KEY: _b64(key.token),
            "username": _b64(spec.username),
            "expiresAt": _b64(timestamp(expires_at) or ""),
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")
