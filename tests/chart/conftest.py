"""Fixtures for the packaging tests: the chart, its values, and Helm renderings of it."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "milvus-auth"
VALUES_DIR = Path(__file__).parent / "values"
EXAMPLES = ROOT / "examples" / "k8s"
# Every values file the chart is tested with, besides its defaults.
VALUES_FILES = sorted([*VALUES_DIR.glob("*.yaml"), *EXAMPLES.glob("values-*.yaml")])

needs_helm = pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="helm-sdkpy (the embedded Helm) needs Python 3.12+; `make test` runs 3.12",
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's value merge: maps merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Release:
    """One rendered release: its objects (in Helm's install order) and its NOTES.txt."""

    objects: list[dict[str, Any]]
    notes: str

    def find(self, kind: str, name_suffix: str = "") -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects
            if obj["kind"] == kind and obj["metadata"]["name"].endswith(name_suffix)
        ]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = self.find(kind, name_suffix)
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]


class RenderError(Exception):
    """Helm refused the chart or the values; the message is Helm's."""


Render = Callable[..., list[Release]]


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """`render(values, *upgrade_values)`: install into kmock, then upgrade; every release."""
    workdir = tmp_path_factory.mktemp("render")
    # Rendering the same values twice gives the same objects but for random secrets.
    cache: dict[str, list[Release]] = {}

    def _render(*values: dict[str, Any]) -> list[Release]:
        key = json.dumps(values, sort_keys=True)
        if key not in cache:
            cache[key] = _run(values)
        return cache[key]

    def _run(values: tuple[dict[str, Any], ...]) -> list[Release]:
        files = []
        for index, value in enumerate(values or ({},)):
            path = workdir / f"values-{index}.json"
            path.write_text(json.dumps(value), encoding="utf-8")
            files.append(str(path))
        result = subprocess.run(
            [sys.executable, "-m", "tests.chart.render", str(CHART), *files],
            cwd=ROOT,
            env={**os.environ, "HELM_DRIVER": "memory"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RenderError(result.stderr.strip())
        releases = json.loads(result.stdout)["releases"]
        return [
            Release(
                objects=[doc for doc in yaml.safe_load_all(release["manifest"]) if doc],
                notes=release["notes"],
            )
            for release in releases
        ]

    return _render


@pytest.fixture(scope="session")
def default_release(render: Render) -> Release:
    """The chart installed with its default values."""
    return render({})[0]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables; a `resourceFieldRef` resolved as the kubelet resolves it,
    other `valueFrom` references left empty."""
    return {
        item["name"]: item["value"] if "value" in item else _resource_field(container, item)
        for item in container.get("env", [])
    }


def _resource_field(container: dict[str, Any], item: dict[str, Any]) -> str:
    """The kubelet's downward API for CPU: the quantity over the divisor, rounded up."""
    reference = item.get("valueFrom", {}).get("resourceFieldRef")
    if reference is None:
        return ""
    assert reference["containerName"] == container["name"]
    kind, _, resource = reference["resource"].partition(".")
    assert resource == "cpu", "only CPU references are resolved here"
    quantity = cpu_millis(container["resources"][kind][resource])
    return str(math.ceil(quantity / cpu_millis(reference.get("divisor", "1"))))


def cpu_millis(quantity: str | float) -> int:
    """A CPU quantity (`2`, `0.5`, `1500m`) in millicores."""
    text = str(quantity)
    if text.endswith("m"):
        return int(text[:-1])
    return math.ceil(float(text) * 1000)
