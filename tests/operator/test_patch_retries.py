"""Status and finalizer PATCHes the API server refuses are retried at once, not at the resync.

kmock answers planned PATCHes with a refusal (`refuse`), as an API server under a validation
race (kubernetes#114661: 422) or a conflict (409) would, or with a 5xx, which kopf retries by
itself. The resync period here is 300 s: a status that lands within seconds was retried.
"""

from __future__ import annotations

import kmock

from tests.operator.cluster import NAMESPACE, Cluster, eventually, refuse
from tests.operator.conftest import FakeNotifier, StartOperator

PASSWORD = "patch-retry-password-1"
STATUS = f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{{}}/status"
OBJECT = f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{{}}"


def _planned(api: kmock.KubernetesEmulator, path: str) -> list[int]:
    return list(api.__dict__.get("refusals", {}).get(path, []))


async def _applied_despite(
    api: kmock.KubernetesEmulator, cluster: Cluster, name: str, path: str, refusals: list[int]
) -> None:
    """Create MilvusUser `name` while kmock refuses the next PATCHes of `path`; it must reach
    Applied (within seconds, with a 300 s resync) and use up every planned refusal."""
    await cluster.put_secret(f"{name}-password", PASSWORD)
    refuse(api, path, refusals)
    await cluster.create_user(
        name, {"username": name, "passwordSecretRef": {"name": f"{name}-password"}}
    )
    await eventually(lambda: cluster.reason(name) == "Applied", within=20)
    assert _planned(api, path) == []


async def test_status_patches_refused_with_422_and_409_are_retried_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    await _applied_despite(api, cluster, "pat", STATUS.format("pat"), [422, 409])
    retries = operator.runtime.metrics.patch_retries
    assert retries.labels("422")._value.get() == 1
    assert retries.labels("409")._value.get() == 1


async def test_finalizer_patch_refused_with_409_is_retried_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(notifier=FakeNotifier())
    await _applied_despite(api, cluster, "fin", OBJECT.format("fin"), [409])
    assert "auth.milvus.io/finalizer" in cluster.user("fin")["metadata"]["finalizers"]


async def test_server_errors_are_left_to_kopfs_own_retries(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    await _applied_despite(api, cluster, "sam", STATUS.format("sam"), [500, 503])
    assert operator.runtime.metrics.patch_retries._metrics == {}
