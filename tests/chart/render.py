"""Render the chart the way Helm installs it: `helm install` (then `helm upgrade`) into kmock.

helm-sdkpy has no `helm template`, so this runs Helm's real install action against kmock, an
in-process Kubernetes API (tests/chart/kube.py), with Helm's in-memory release storage. Helm
renders the templates, validates the values against values.schema.json, runs `lookup`
against kmock (so Secrets generated on install are visible to the upgrade) and sends every
object to kmock.

Helm reads HELM_DRIVER once, when its shared library loads, so this runs as a subprocess:

    HELM_DRIVER=memory python -m tests.chart.render CHART VALUES.json [UPGRADE_VALUES.json]

and prints {"releases": [{"manifest": ..., "notes": ...}, ...]} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_sdkpy

from tests.chart.kube import NAMESPACE, kubernetes_api

RELEASE = "mauth"


async def render(chart: str, values: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Install with the first values, upgrade with each of the others; return every release."""
    with tempfile.TemporaryDirectory() as workdir:
        async with kubernetes_api(Path(workdir)) as kubeconfig:
            config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=str(kubeconfig))
            install = helm_sdkpy.Install(config)
            releases = [await install.run(RELEASE, chart, values[0], wait=False)]
            for later in values[1:]:
                upgrade = helm_sdkpy.Upgrade(config)
                releases.append(
                    await upgrade.run(RELEASE, chart, later, wait=False, server_side_apply=False)
                )
    return [
        {"manifest": release["manifest"], "notes": release["info"].get("notes", "")}
        for release in releases
    ]


def main(argv: list[str]) -> int:
    chart, *value_files = argv
    values = [json.loads(Path(path).read_text()) for path in value_files]
    try:
        releases = asyncio.run(render(chart, values))
    except helm_sdkpy.HelmError as error:
        print(f"helm: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"releases": releases}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
