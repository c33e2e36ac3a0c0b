"""The operator against kmock and a real etcd, with a recording notifier instead of proxies."""

from __future__ import annotations

from milvus_auth.core import cache_digest, verify_password
from milvus_auth.store import CredentialStore
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator

PASSWORD = "first-password-1"


async def test_create_writes_the_record_and_reports_ready(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    notifier = FakeNotifier(total=2)
    await start_operator(notifier=notifier)
    await cluster.put_secret("alice-password", PASSWORD)
    await cluster.create_user(
        "alice", {"username": "alice", "passwordSecretRef": {"name": "alice-password"}}
    )

    await eventually(lambda: cluster.reason("alice") == "Applied", what="alice Ready")
    stored = await store.get("alice")
    assert stored is not None
    assert verify_password(PASSWORD, stored.record.encrypted_password)
    status = cluster.status("alice")
    assert status["observedGeneration"] == 1
    assert status["proxies"] == {"updated": 2, "total": 2, "summary": "2/2"}
    assert status["recordRevision"] == stored.mod_revision
    assert status["passwordVersion"] == "uid-secret-alice-password/101"
    assert notifier.updates == [("alice", cache_digest("alice", PASSWORD))]
    assert "auth.milvus.io/finalizer" in cluster.user("alice")["metadata"]["finalizers"]
