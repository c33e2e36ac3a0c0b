"""Hot standby with kopf peering: two operator processes, one active; the standby takes over.

Real operator processes (so the active one can die by SIGKILL, without saying goodbye) against
kmock and the test's etcd. kmock serves kopf's KopfPeering resource as the chart installs it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import kmock
import pytest

from milvus_auth.store import CredentialStore
from tests.harness.processes import EtcdServer
from tests.operator.cluster import NAMESPACE, Cluster, eventually, write_kubeconfig
from tests.operator.processes import OperatorProcess

PEERINGS = "kopf.dev/v1/kopfpeerings"
PEERING = "milvus-auth"
# Seconds; the chart's default is 15. kopf then sends a keep-alive every 1-3 s, which leaves a
# busy test machine 5 s of slack before a live operator would be taken for dead.
LIFETIME = 8
PASSWORD = "peering-password-1"


def declare_peering(api: kmock.KubernetesEmulator) -> None:
    """kopf's namespaced peering CRD and the chart's peering object in the watched namespace."""
    verbs = {"list", "watch", "get", "create", "patch", "delete"}
    api.resources[PEERINGS] = kmock.ResourceInfo(kind="KopfPeering", namespaced=True, verbs=verbs)
    api.objects[kmock.resource(PEERINGS), NAMESPACE, PEERING] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": PEERING, "namespace": NAMESPACE, "resourceVersion": "1"},
    }


async def _record_versions(store: CredentialStore, usernames: list[str]) -> dict[str, int]:
    """How many times each user's record was written (etcd's per-key version)."""
    versions = {}
    for username in usernames:
        key = store.layout.key_for(username).encode()
        found = await store.connection.call(lambda client, key=key: client.get(key))
        versions[username] = 0 if found is None else int(found.version)
    return versions


@pytest.mark.slow
async def test_the_standby_takes_over_when_the_active_operator_is_killed(
    api: kmock.KubernetesEmulator,
    cluster: Cluster,
    etcd: EtcdServer,
    meta_root: str,
    store: CredentialStore,
    tmp_path: Path,
) -> None:
    declare_peering(api)
    active, standby = _operators(api, etcd, meta_root, tmp_path, lifetime=LIFETIME)
    try:
        await asyncio.to_thread(active.start)
        await cluster.put_secret("shared", PASSWORD)
        await cluster.create_user(
            "before", {"username": "before", "passwordSecretRef": {"name": "shared"}}
        )
        await eventually(lambda: cluster.reason("before") == "Applied", within=30)

        # Started later, so of lower priority: it joins paused and stays paused.
        await asyncio.to_thread(standby.start)
        await eventually(lambda: len(_peers(api)) == 2, within=30, what="both operators peered")
        await cluster.create_user(
            "during", {"username": "during", "passwordSecretRef": {"name": "shared"}}
        )
        await eventually(lambda: cluster.reason("during") == "Applied", within=30)
        await asyncio.sleep(LIFETIME)  # several keep-alives: the standby stays out
        assert standby.counter("reconciles") == 0
        assert active.counter("etcd_writes") == 2

        killed = time.monotonic()
        active.kill()
        await cluster.create_user(
            "after", {"username": "after", "passwordSecretRef": {"name": "shared"}}
        )
        # Generous: the lifetime, then kopf's resume of every user, on a machine others share.
        await eventually(lambda: cluster.reason("after") == "Applied", within=60)
        takeover = time.monotonic() - killed
        print(f"takeover after SIGKILL with a {LIFETIME} s peering lifetime: {takeover:.1f} s")

        # The standby resumed the users it inherited without writing them again.
        assert standby.counter("etcd_writes") == 1
        assert standby.counter("reconciles") >= 3
        versions = await _record_versions(store, ["before", "during", "after"])
        assert versions == {"before": 1, "during": 1, "after": 1}
        assert takeover > LIFETIME / 2  # a dead peer is waited for: it said no goodbye
    finally:
        for process in (active, standby):
            await asyncio.to_thread(process.stop)
    assert PASSWORD not in active.log() + standby.log()


async def test_a_clean_stop_hands_over_at_once(
    api: kmock.KubernetesEmulator,
    cluster: Cluster,
    etcd: EtcdServer,
    meta_root: str,
    tmp_path: Path,
) -> None:
    """SIGTERM (a rollout, a drained node): the active operator removes itself from the
    peering as it exits, so the standby does not wait for the lifetime to run out."""
    declare_peering(api)
    # A long lifetime: only the goodbye can explain a quick takeover.
    processes = _operators(api, etcd, meta_root, tmp_path, lifetime=60)
    active, standby = processes
    try:
        for process in processes:
            await asyncio.to_thread(process.start)
        await eventually(lambda: len(_peers(api)) == 2, within=30, what="both operators peered")
        await cluster.put_secret("shared", PASSWORD)
        stopped = time.monotonic()
        await asyncio.to_thread(active.stop)
        await cluster.create_user(
            "after", {"username": "after", "passwordSecretRef": {"name": "shared"}}
        )
        await eventually(lambda: cluster.reason("after") == "Applied", within=40)
        print(f"takeover after SIGTERM: {time.monotonic() - stopped:.1f} s")
        assert standby.counter("etcd_writes") == 1
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)


def _operators(
    api: kmock.KubernetesEmulator, etcd: EtcdServer, meta_root: str, workdir: Path, *, lifetime: int
) -> list[OperatorProcess]:
    """Two peered operator processes (not started) watching NAMESPACE on kmock."""
    kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(api.url))
    return [
        OperatorProcess(
            workdir,
            name=name,
            kubeconfig=kubeconfig,
            etcd_endpoint=etcd.endpoint,
            meta_root=meta_root,
            extra_args=["--peering", PEERING, "--peering-lifetime", str(lifetime)],
        )
        for name in ("operator-a", "operator-b")
    ]


def _peers(api: kmock.KubernetesEmulator) -> dict[str, object]:
    """The live entries of the peering object's status (kopf's keep-alives)."""
    peering = api.objects[kmock.resource(PEERINGS), NAMESPACE, PEERING].raw
    return {key: value for key, value in (peering.get("status") or {}).items() if value}
