"""What an operator's operator sees: the liveness endpoint and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.harness.processes import free_port
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_liveness_and_metrics_endpoints(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    health, metrics = free_port(), free_port()
    await start_operator(
        notifier=FakeNotifier(),
        liveness=f"http://127.0.0.1:{health}/healthz",
        metrics_port=metrics,
    )
    await cluster.put_secret("rita-password", "rita-password-1")
    await cluster.create_user(
        "rita", {"username": "rita", "passwordSecretRef": {"name": "rita-password"}}
    )
    await eventually(lambda: cluster.reason("rita") == "Applied")

    status, _ = await asyncio.to_thread(_get, f"http://127.0.0.1:{health}/healthz")
    assert status == 200
    status, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{metrics}/metrics")
    assert status == 200
    assert 'milvus_auth_operator_reconciles_total{result="Applied"} 1.0' in text
    assert 'milvus_auth_operator_etcd_writes_total{operation="create"} 1.0' in text
    assert 'milvus_auth_operator_bcrypt_seconds_count{operation="hash"} 1.0' in text
