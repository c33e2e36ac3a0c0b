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


async def test_status_patches_refused_with_422_and_409_are_retried_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("pat-password", PASSWORD)
    refuse(api, STATUS.format("pat"), [422, 409])
    await cluster.create_user(
        "pat", {"username": "pat", "passwordSecretRef": {"name": "pat-password"}}
    )
    await eventually(lambda: cluster.reason("pat") == "Applied", within=20)
    assert _planned(api, STATUS.format("pat")) == []
    retries = operator.runtime.metrics.patch_retries
    assert retries.labels("422")._value.get() == 1
    assert retries.labels("409")._value.get() == 1


async def test_finalizer_patch_refused_with_409_is_retried_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("fin-password", PASSWORD)
    refuse(api, OBJECT.format("fin"), [409])
    await cluster.create_user(
        "fin", {"username": "fin", "passwordSecretRef": {"name": "fin-password"}}
    )
    await eventually(lambda: cluster.reason("fin") == "Applied", within=20)
    assert _planned(api, OBJECT.format("fin")) == []
    assert "auth.milvus.io/finalizer" in cluster.user("fin")["metadata"]["finalizers"]


async def test_server_errors_are_left_to_kopfs_own_retries(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("sam-password", PASSWORD)
    refuse(api, STATUS.format("sam"), [500, 503])
    await cluster.create_user(
        "sam", {"username": "sam", "passwordSecretRef": {"name": "sam-password"}}
    )
    await eventually(lambda: cluster.reason("sam") == "Applied", within=20)
    assert _planned(api, STATUS.format("sam")) == []
    assert operator.runtime.metrics.patch_retries._metrics == {}
