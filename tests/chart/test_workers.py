"""The proxy's `--workers` in the chart: from the container's CPU limit unless set."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import Render, RenderError, containers, env_of, needs_helm

pytestmark = needs_helm


def _proxy_container(render: Render, values: dict[str, Any]) -> dict[str, Any]:
    (container,) = containers(render(values)[0].one("Deployment", "-proxy"))
    return container


def _workers(render: Render, proxy_values: dict[str, Any]) -> str:
    return env_of(_proxy_container(render, {"proxy": proxy_values}))["MILVUS_AUTH_WORKERS"]


def test_without_a_cpu_limit_one_worker(render: Render) -> None:
    assert _workers(render, {}) == "1"


@pytest.mark.parametrize(("cpu", "workers"), [("2", "2"), (4, "4"), ("1500m", "2"), ("0.5", "1")])
def test_the_cpu_limit_rounded_up_is_the_worker_count(
    render: Render, cpu: str | int, workers: str
) -> None:
    resources = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu, "memory": "512Mi"}}
    container = _proxy_container(render, {"proxy": {"resources": resources}})
    (item,) = [item for item in container["env"] if item["name"] == "MILVUS_AUTH_WORKERS"]
    # The downward API, so a resized limit needs no new render.
    assert item["valueFrom"]["resourceFieldRef"] == {
        "containerName": "proxy",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    assert env_of(container)["MILVUS_AUTH_WORKERS"] == workers


def test_an_explicit_count_wins(render: Render) -> None:
    assert _workers(render, {"workers": 3, "resources": {"limits": {"cpu": "2"}}}) == "3"


def test_workers_cannot_also_come_from_extra_flags(render: Render) -> None:
    with pytest.raises(RenderError, match="MILVUS_AUTH_WORKERS"):
        render({"proxy": {"extraFlags": {"workers": 2}}})


@pytest.mark.parametrize("workers", [0, "two"])
def test_helm_refuses_a_bad_count(render: Render, workers: object) -> None:
    with pytest.raises(RenderError, match="schema"):
        render({"proxy": {"workers": workers}})
