"""Status writes the API server refuses for a transient reason are retried at once.

kmock answers the planned PATCHes of a MilvusUser's status subresource with 422 (the
validation race of kubernetes#114661), 409 and 503; the user must still become Ready in
seconds, with the resync period far away (300 s).
"""

from __future__ import annotations

import logging
import time

import kmock
import pytest

from tests.operator.cluster import NAMESPACE, Cluster, eventually, refuse
from tests.operator.conftest import FakeNotifier, StartOperator

PASSWORD = "retried-password-1"


def _status_path(name: str) -> str:
    return f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{name}/status"


async def test_refused_status_patches_are_retried_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    refuse(api, _status_path("kim"), [422, 409, 503])
    await cluster.put_secret("kim-password", PASSWORD)
    started = time.monotonic()
    await cluster.create_user(
        "kim", {"username": "kim", "passwordSecretRef": {"name": "kim-password"}}
    )
    await eventually(lambda: cluster.reason("kim") == "Applied", within=10)
    assert time.monotonic() - started < 10  # the resync is 300 s away
    assert operator.runtime.status.retries == 3
    assert api.refusals[_status_path("kim")] == []  # type: ignore[attr-defined]
    assert operator.runtime.metrics.etcd_write_count() == 1  # retried the patch, not the work


async def test_a_refusal_outlasting_the_retries_leaves_the_status_to_kopf(
    api: kmock.KubernetesEmulator,
    cluster: Cluster,
    start_operator: StartOperator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    operator.runtime.status.delays = (0.01, 0.01)
    refuse(api, _status_path("lee"), [422, 422, 422])  # one more than the writer tries
    await cluster.put_secret("lee-password", PASSWORD)
    await cluster.create_user(
        "lee", {"username": "lee", "passwordSecretRef": {"name": "lee-password"}}
    )
    await eventually(lambda: cluster.reason("lee") == "Applied", within=10)
    assert operator.runtime.status.retries == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cannot write the status" in message for message in warnings)


async def test_a_permanent_refusal_is_not_retried(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    refuse(api, _status_path("max"), [403])
    await cluster.put_secret("max-password", PASSWORD)
    await cluster.create_user(
        "max", {"username": "max", "passwordSecretRef": {"name": "max-password"}}
    )
    await eventually(lambda: cluster.reason("max") == "Applied", within=10)  # kopf's patch
    assert operator.runtime.status.retries == 0
