"""The MilvusUser CRD: offline schema validation, Milvus's username rule, and its CEL rules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

from milvus_auth.core import USERNAME_PATTERN

CRD_PATH = Path(__file__).parents[2] / "crds" / "milvususer.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _version(crd)["schema"]["openAPIV3Schema"]
    return schema


def test_crd_passes_offline_kubernetes_validation(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, "1.32.0", strict=True)


def test_the_validator_would_notice_a_broken_crd(crd: dict[str, Any]) -> None:
    broken = copy.deepcopy(crd)
    broken["spec"]["versions"][0]["served"] = "yes"
    broken["spec"]["names"]["plurals"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32.0", strict=True)


def test_names_and_subresources(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "milvususers.auth.milvus.io"
    assert crd["spec"]["names"]["shortNames"] == ["mvu"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert _version(crd)["name"] == "v1alpha1"
    assert _version(crd)["subresources"] == {"status": {}}
    columns = [column["name"] for column in _version(crd)["additionalPrinterColumns"]]
    assert columns[:3] == ["Username", "Ready", "Proxies"]
    assert "Age" in columns


def test_username_pattern_is_milvuss_rule(crd: dict[str, Any]) -> None:
    username = _schema(crd)["properties"]["spec"]["properties"]["username"]
    assert username["pattern"] == USERNAME_PATTERN
    assert username["maxLength"] == 32


@pytest.mark.parametrize(
    ("spec", "valid"),
    [
        ({"username": "alice"}, True),
        ({"username": "a.b-c_1", "passwordSecretRef": {"name": "s", "key": "pw"}}, True),
        ({"username": "1abc"}, False),
        ({"username": "a" * 33}, False),
        ({"username": "alice", "deletionPolicy": "Orphan"}, False),
        ({"username": "alice", "passwordSecretRef": {"key": "pw"}}, False),
        ({}, False),
    ],
)
def test_schema_accepts_and_refuses(crd: dict[str, Any], spec: dict[str, Any], valid: bool) -> None:
    validator = jsonschema.Draft7Validator(_schema(crd)["properties"]["spec"])
    assert validator.is_valid(spec) is valid


def _rules(schema: dict[str, Any]) -> dict[str, str]:
    return {rule["rule"]: rule["message"] for rule in schema.get("x-kubernetes-validations", [])}


def _evaluate(rule: str, **variables: Any) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(rule))
    activation = {name: celpy.json_to_cel(value) for name, value in variables.items()}
    return bool(program.evaluate(activation))


def test_username_is_immutable_by_cel(crd: dict[str, Any]) -> None:
    username = _schema(crd)["properties"]["spec"]["properties"]["username"]
    rules = _rules(username)
    assert list(rules.values()) == ["spec.username is immutable"]
    (rule,) = rules
    assert _evaluate(rule, self="alice", oldSelf="alice")
    assert not _evaluate(rule, self="bob", oldSelf="alice")


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        ({"username": "root"}, False),
        ({"username": "root", "allowRoot": False}, False),
        ({"username": "root", "allowRoot": True}, True),
        ({"username": "alice"}, True),
    ],
)
def test_root_needs_allow_root_by_cel(
    crd: dict[str, Any], spec: dict[str, Any], allowed: bool
) -> None:
    rules = _rules(_schema(crd)["properties"]["spec"])
    rule = next(r for r, message in rules.items() if "allowRoot" in message)
    assert _evaluate(rule, self=spec) is allowed


def test_rotation_only_for_generated_passwords_by_cel(crd: dict[str, Any]) -> None:
    rules = _rules(_schema(crd)["properties"]["spec"])
    rule = next(r for r, message in rules.items() if "rotation" in message)
    assert _evaluate(rule, self={"username": "a", "rotation": "1"})
    assert not _evaluate(
        rule, self={"username": "a", "rotation": "1", "passwordSecretRef": {"name": "s"}}
    )
