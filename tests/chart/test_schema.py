"""values.schema.json accepts the defaults and every example; rejects wrong types, unknown keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.chart.conftest import CHART, VALUES_FILES, deep_merge, load_yaml

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS = load_yaml(CHART / "values.yaml")
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def errors(values: dict[str, Any]) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(values)]


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_defaults_pass() -> None:
    assert errors(DEFAULTS) == []


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name)
def test_example_values_pass(values_file: Path) -> None:
    assert errors(deep_merge(DEFAULTS, load_yaml(values_file))) == []


def _keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the schema's declared (closed) properties."""
    found: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        found.add(path)
        if sub.get("additionalProperties") is False:
            found |= _keys(sub, f"{path}.")
    return found


def _value_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, value in values.items():
        path = f"{prefix}{name}"
        found.add(path)
        sub = schema.get("properties", {}).get(name, {})
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            found |= _value_keys(value, sub, f"{path}.")
    return found


def test_every_setting_is_in_values_yaml() -> None:
    # values.yaml is the documentation: a schema key missing from it is undocumented.
    assert _keys(SCHEMA) - {"global"} == _value_keys(DEFAULTS, SCHEMA)


@pytest.mark.parametrize(
    "override",
    [
        {"replicas": 3},
        {"proxy": {"replicas": 3}},
        {"proxy": {"service": {"portt": 19530}}},
        {"etcd": {"tls": {"ca": "ca.crt"}}},
        {"operator": {"namespaces": ["a"]}},
        {"image": {"registry": "docker.io"}},
    ],
    ids=str,
)
def test_unknown_keys_are_rejected(override: dict[str, Any]) -> None:
    assert any(
        "Additional properties" in message for message in errors(deep_merge(DEFAULTS, override))
    )


@pytest.mark.parametrize(
    "override",
    [
        {"proxy": {"replicaCount": "2"}},
        {"proxy": {"authEnabled": "yes"}},
        {"proxy": {"upstream": "milvus"}},
        {"proxy": {"superUsers": "admin"}},
        {"proxy": {"superUsers": ["9admin"]}},
        {"proxy": {"ports": {"internal": 70000}}},
        {"proxy": {"service": {"type": "ExternalName"}}},
        {"proxy": {"podAntiAffinity": "always"}},
        {"proxy": {"rateLimit": {"RateLimit": "5"}}},
        {"etcd": {"endpoints": "etcd:2379"}},
        {"etcd": {"endpoints": []}},
        {"etcd": {"endpoints": ["etcd"]}},
        {"etcd": {"layout": "custom"}},
        {"etcd": {"auth": {"enabled": True, "username": "", "existingSecret": "s"}}},
        {"etcd": {"tls": {"enabled": True}}},
        {"proxy": {"tls": {"enabled": True}}},
        {"serviceAccount": {"create": False, "name": ""}},
        {"bcryptCost": 3},
        {"maxUsers": 0},
        {"bcryptCost": "10"},
        {"image": {"tag": "latest"}},
        {"image": {"digest": "sha256:abc"}},
        {"operator": {"scope": "global"}},
        {"operator": {"watchNamespaces": ["Team_A"]}},
        {"operator": {"proxyService": "no-namespace"}},
        {"operator": {"resyncPeriod": 0}},
        {"operator": {"replicas": 0}},
        {"operator": {"peeringLifetime": 1}},
        {"crds": {"enabled": "true"}},
        {"metrics": {"serviceMonitor": {"interval": "soon"}}},
    ],
    ids=str,
)
def test_wrong_values_are_rejected(override: dict[str, Any]) -> None:
    assert errors(deep_merge(DEFAULTS, override))
