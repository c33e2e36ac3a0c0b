"""kmock as a Kubernetes API for Helm and kubectl: discovery of the kinds our files use.

kmock (by kopf's author) serves discovery from its bundled list of built-in resources; the
custom kinds the chart and the examples create are added here. Objects sent to it are kept
in memory, so Helm's `lookup` sees what an earlier install created.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import kmock
from kmock._internal.apps import Server

NAMESPACE = "milvus"
CUSTOM_RESOURCES = {
    "milvususers.v1alpha1.auth.milvus.io": {"kind": "MilvusUser", "namespaced": True},
    "milvusroles.v1alpha1.auth.milvus.io": {"kind": "MilvusRole", "namespaced": True},
    "kopfpeerings.v1.kopf.dev": {"kind": "KopfPeering", "namespaced": True},
    "clusterkopfpeerings.v1.kopf.dev": {"kind": "ClusterKopfPeering", "namespaced": False},
    "milvusapikeys.v1alpha1.auth.milvus.io": {"kind": "MilvusAPIKey", "namespaced": True},
    "servicemonitors.v1.monitoring.coreos.com": {"kind": "ServiceMonitor", "namespaced": True},
    "certificates.v1.cert-manager.io": {"kind": "Certificate", "namespaced": True},
    "applications.v1alpha1.argoproj.io": {"kind": "Application", "namespaced": True},
    "gitrepositories.v1.source.toolkit.fluxcd.io": {"kind": "GitRepository", "namespaced": True},
    "kustomizations.v1.kustomize.toolkit.fluxcd.io": {"kind": "Kustomization", "namespaced": True},
}


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig (JSON is valid YAML) pointing at `url` with namespace `milvus`."""
    path.write_text(
        json.dumps(
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
        ),
        encoding="utf-8",
    )
    return path


async def _serve_core_group(emulator: kmock.KubernetesEmulator) -> None:
    # kmock 0.8 reports the core group as "/v1"; Helm and kubectl then map no core kind, so
    # serve the same discovery document with the groupVersion Kubernetes uses.
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/api/v1") as reply:
        document = await reply.json()
    document["groupVersion"] = "v1"
    emulator["get /api/v1"] << document


@asynccontextmanager
async def kubernetes_api(workdir: Path) -> AsyncIterator[Path]:
    """An in-process Kubernetes API; yields the path of a kubeconfig for it."""
    async with kmock.KubernetesEmulator() as emulator, Server(emulator):
        emulator.resources.load_bundled()
        for key, info in CUSTOM_RESOURCES.items():
            emulator.resources[key] = info
        await _serve_core_group(emulator)
        yield write_kubeconfig(workdir / "kubeconfig.yaml", str(emulator.url))
