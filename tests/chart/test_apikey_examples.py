"""The MilvusAPIKey CRD and the API key examples: offline schema and CEL checks, kustomize."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from milvus_auth.operator.apikeys.decide import check_spec
from milvus_auth.operator.apikeys.spec import ApiKeySpec
from tests.chart.conftest import load_all
from tests.chart.test_examples import (
    KEY_CRD_FILE,
    KEY_FILES,
    KUBERNETES_VERSION,
    broken_rules,
    kustomize,
    needs_kubectl,
    user_schema,
)


def key_schema() -> dict[str, Any]:
    (document,) = load_all(KEY_CRD_FILE)
    (version,) = document["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _key(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "auth.milvus.io/v1alpha1", "kind": "MilvusAPIKey", "spec": spec}


def examples(kind: str) -> list[dict[str, Any]]:
    return [obj for path in KEY_FILES for obj in load_all(path) if obj["kind"] == kind]


def test_key_crd_passes_kubernetes_schema_with_its_names_and_columns() -> None:
    (document,) = load_all(KEY_CRD_FILE)
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    names = document["spec"]["names"]
    assert (names["kind"], names["shortNames"], names["categories"]) == (
        "MilvusAPIKey",
        ["mvk"],
        ["milvus"],
    )
    (version,) = document["spec"]["versions"]
    shown = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Username", "Ready", "Expires", "Age"]
    # The key itself has no place in the resource: nothing in its status could hold it.
    status = key_schema()["properties"]["status"]["properties"]
    assert not {"token", "key", "secret"} & set(status)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"username": "9lives"},
        {"username": "etl", "expiresAfter": "30d"},
        {"username": "etl", "rotateEvery": "-1h"},
        {"username": "etl", "rotationGracePeriod": "soon"},
        {"username": "etl", "secretTemplate": {"labels": {"a": 1}}},
    ],
    ids=str,
)
def test_key_crd_schema_rejects_bad_keys(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_key(spec), key_schema())


def test_key_username_is_immutable() -> None:
    key = _key({"username": "bob"})
    jsonschema.validate(key, key_schema())
    assert broken_rules(key, _key({"username": "alice"}), key_schema()) == [
        ".spec.username: self == oldSelf"
    ]


@pytest.mark.parametrize("key", examples("MilvusAPIKey"), ids=lambda k: k["metadata"]["name"])
def test_example_keys_pass_the_crd_and_name_a_user_declared_beside_them(
    key: dict[str, Any],
) -> None:
    jsonschema.validate(key, key_schema())
    assert broken_rules(key, None, key_schema()) == []
    key["spec"].setdefault("rotationGracePeriod", "1h")  # the CRD's default
    assert check_spec(ApiKeySpec.from_body(key)) is None
    users = examples("MilvusUser")
    for user in users:
        jsonschema.validate(user, user_schema())
    assert key["spec"]["username"] in {user["spec"]["username"] for user in users}


@needs_kubectl
def test_apikeys_directory_builds_with_kustomize() -> None:
    objects = kustomize("apikeys")
    assert {obj["metadata"]["namespace"] for obj in objects} == {"milvus"}
    assert sorted(obj["kind"] for obj in objects) == ["MilvusAPIKey"] * 2 + ["MilvusUser"] * 2
