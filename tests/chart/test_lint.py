"""`helm lint`, strict, of the chart with its defaults and every representative values file.

helm-sdkpy's lint takes no values argument, so each values file is linted the way Helm
would see it installed: a copy of the chart whose values.yaml is the merged values.
Strict means any message above INFO fails, like `helm lint --strict`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, VALUES_FILES, deep_merge, load_yaml, needs_helm

pytestmark = needs_helm

INFO = 1


def lint(chart: Path) -> dict[str, Any]:
    import helm_sdkpy  # noqa: PLC0415  (Python 3.12+ only; the module is skipped before)

    result: dict[str, Any] = asyncio.run(
        helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(chart))
    )
    return result


def problems(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [message for message in result["Messages"] if message["Severity"] > INFO]


def chart_with_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    copy = tmp_path / "milvus-auth"
    shutil.copytree(CHART, copy)
    (copy / "values.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
    return copy


def test_chart_lints_clean_with_defaults() -> None:
    result = lint(CHART)
    assert result["TotalChartsLinted"] == 1
    assert problems(result) == []
    assert not result["Errors"]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name)
def test_chart_lints_clean_with_values(values_file: Path, tmp_path: Path) -> None:
    values = deep_merge(load_yaml(CHART / "values.yaml"), load_yaml(values_file))
    result = lint(chart_with_values(tmp_path, values))
    assert problems(result) == []
    assert not result["Errors"]


def test_lint_catches_a_template_error(tmp_path: Path) -> None:
    # Guards the two tests above: a lint that passed everything would prove nothing.
    copy = chart_with_values(tmp_path, load_yaml(CHART / "values.yaml"))
    (copy / "templates" / "broken.yaml").write_text("{{ .Values.proxy.nope.deeper }}\n")
    assert problems(lint(copy))


def test_lint_applies_the_values_schema(tmp_path: Path) -> None:
    values = deep_merge(load_yaml(CHART / "values.yaml"), {"proxy": {"replicaCount": "two"}})
    assert problems(lint(chart_with_values(tmp_path, values)))
