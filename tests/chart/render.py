"""Render the chart the way Helm installs it: `helm install` (then `helm upgrade`) into kmock.

helm-sdkpy has no `helm template`, so this runs Helm's real install action against kmock, an
in-process Kubernetes API, with Helm's in-memory release storage. Helm renders the templates,
validates the values against values.schema.json, runs `lookup` against kmock (so Secrets
generated on install are visible to the upgrade) and sends every object to kmock.

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

import aiohttp
import helm_sdkpy
import kmock
from kmock._internal.apps import Server

NAMESPACE = "milvus"
RELEASE = "mauth"
# Kinds the chart may create that kmock's bundled (built-in only) resource list lacks.
EXTRA_RESOURCES = {
    "milvususers.v1alpha1.auth.milvus.io": {"kind": "MilvusUser", "namespaced": True},
    "servicemonitors.v1.monitoring.coreos.com": {"kind": "ServiceMonitor", "namespaced": True},
}


def _kubeconfig(url: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": url}}],
            "users": [{"name": "test", "user": {"token": "test"}}],
            "contexts": [
                {
                    "name": "kmock",
                    "context": {"cluster": "kmock", "user": "test", "namespace": NAMESPACE},
                }
            ],
            "current-context": "kmock",
        }
    )


async def _serve_core_group(emulator: kmock.KubernetesEmulator) -> None:
    # kmock 0.8 reports the core group as "/v1"; Helm then maps no core kind, so serve the
    # same discovery document with the groupVersion Kubernetes uses.
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/api/v1") as reply:
        document = await reply.json()
    document["groupVersion"] = "v1"
    emulator["get /api/v1"] << document


async def render(chart: str, values: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Install with the first values, upgrade with each of the others; return every release."""
    async with kmock.KubernetesEmulator() as emulator, Server(emulator):
        emulator.resources.load_bundled()
        for key, info in EXTRA_RESOURCES.items():
            emulator.resources[key] = info
        await _serve_core_group(emulator)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as kubeconfig:
            kubeconfig.write(_kubeconfig(str(emulator.url)))
            kubeconfig.flush()
            config = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=kubeconfig.name)
            releases = [await helm_sdkpy.Install(config).run(RELEASE, chart, values[0], wait=False)]
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
