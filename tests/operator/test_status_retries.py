"""Status patches the API server refuses for a transient reason are written again at once.

kmock answers the planned PATCHes of a MilvusUser's status subresource with 422 (the
validation race of kubernetes#114661), 409 and 503; the user must still become Ready in
seconds, with the resync period far away (300 s).
"""

from __future__ import annotations

import asyncio
import time

import kmock
import pytest

from tests.operator.cluster import NAMESPACE, Cluster, eventually, refuse
from tests.operator.conftest import FakeNotifier, StartOperator

PASSWORD = "retried-password-1"


def _status_path(name: str) -> str:
    return f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{name}/status"


async def test_refused_status_patches_are_written_again_at_once(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    """kopf's own status patch meets the 422 and drops it; the guard finds the status
    missing and writes it, through a 409 and a 503."""
    operator = await start_operator(notifier=FakeNotifier())
    refuse(api, _status_path("kim"), [422, 409, 503])
    await cluster.put_secret("kim-password", PASSWORD)
    started = time.monotonic()
    await cluster.create_user(
        "kim", {"username": "kim", "passwordSecretRef": {"name": "kim-password"}}
    )
    await eventually(lambda: cluster.reason("kim") == "Applied", within=20)
    assert time.monotonic() - started < 20  # the resync is 300 s away
    assert operator.runtime.status.missed == 1
    assert operator.runtime.status.writer.retries == 2
    assert api.refusals[_status_path("kim")] == []  # type: ignore[attr-defined]
    assert operator.runtime.metrics.etcd_write_count() == 1  # the status again, not the work


async def test_a_refusal_outlasting_the_retries_is_logged(
    api: kmock.KubernetesEmulator,
    cluster: Cluster,
    start_operator: StartOperator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    operator = await start_operator(notifier=FakeNotifier())
    operator.runtime.status.writer.delays = (0.01, 0.01)
    refuse(api, _status_path("lee"), [422] * 4)  # kopf's patch, then every try of the writer
    await cluster.put_secret("lee-password", PASSWORD)
    await cluster.create_user(
        "lee", {"username": "lee", "passwordSecretRef": {"name": "lee-password"}}
    )

    def gave_up() -> bool:
        return any("cannot check or write the status" in r.getMessage() for r in caplog.records)

    await eventually(gave_up, within=20)
    assert operator.runtime.status.writer.retries == 2
    assert cluster.reason("lee") is None  # left for the next event, as kopf would


async def test_kopf_retries_its_own_retriable_refusals(
    api: kmock.KubernetesEmulator, cluster: Cluster, start_operator: StartOperator
) -> None:
    """A 403 (kopf retries it, for API servers being upgraded) needs no help."""
    operator = await start_operator(notifier=FakeNotifier())
    refuse(api, _status_path("max"), [403])
    await cluster.put_secret("max-password", PASSWORD)
    await cluster.create_user(
        "max", {"username": "max", "passwordSecretRef": {"name": "max-password"}}
    )
    await eventually(lambda: cluster.reason("max") == "Applied", within=20)
    await asyncio.sleep(operator.runtime.status.delay + 0.5)  # the guard has looked
    assert operator.runtime.status.missed == 0
