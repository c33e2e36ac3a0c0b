"""Restarts, resyncs and drift: level-based checks that write only when something is wrong."""

from __future__ import annotations

import asyncio

from milvus_auth.core import CredentialRecord, hash_password, verify_password
from milvus_auth.store import CredentialStore
from tests.harness.processes import EtcdServer
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator, etcd_answering

PASSWORD = "resync-password-1"
USERS = 50


async def test_restart_with_unchanged_users_runs_no_bcrypt_and_writes_nothing(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    first = await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("shared", PASSWORD)
    for index in range(USERS):
        await cluster.create_user(
            f"user{index}", {"username": f"user{index}", "passwordSecretRef": {"name": "shared"}}
        )
    await eventually(
        lambda: all(cluster.reason(f"user{i}") == "Applied" for i in range(USERS)), within=60
    )
    assert first.runtime.metrics.etcd_write_count() == USERS
    await first.stop()
    revision = await store.revision()

    notifier = FakeNotifier()
    second = await start_operator(notifier=notifier)
    metrics = second.runtime.metrics
    await eventually(lambda: metrics.reconciles.labels("Applied")._value.get() == USERS, within=30)
    assert metrics.bcrypt_count() == 0
    assert metrics.etcd_write_count() == 0
    assert notifier.updates == []
    # Compared once the operator's thread is gone (anything it wrote is in by then): while
    # grpc.aio serves two event loops in one process, the operator's and the test's, a call on
    # the test's etcd channel stalled past its timeout now and then (one run in three here).
    await second.stop()
    assert await store.revision() == revision


async def test_unlabelled_secret_is_picked_up_at_the_resync(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier(), resync_period=1.0)
    await cluster.put_secret("quiet", PASSWORD, watched=False)
    await cluster.create_user("kim", {"username": "kim", "passwordSecretRef": {"name": "quiet"}})
    await eventually(lambda: cluster.reason("kim") == "Applied")
    assert "changes apply at the next resync" in cluster.condition("kim")["message"]

    await cluster.put_secret("quiet", "rotated-quietly-2")

    async def rotated() -> bool:
        stored = await store.get("kim")
        return stored is not None and verify_password(
            "rotated-quietly-2", stored.record.encrypted_password
        )

    await eventually(rotated, within=10)


async def test_resync_repairs_a_record_changed_behind_the_operators_back(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    operator = await start_operator(notifier=FakeNotifier(), resync_period=0.5)
    await cluster.put_secret("lee-password", PASSWORD)
    await cluster.create_user(
        "lee", {"username": "lee", "passwordSecretRef": {"name": "lee-password"}}
    )
    await eventually(lambda: cluster.reason("lee") == "Applied")
    stored = await store.get("lee")
    assert stored is not None

    # Rewritten with the same password (e.g. by a backup restore): adopted, not rewritten.
    same = stored.record.with_password(hash_password(PASSWORD, 4))
    adopted = await store.update(same, expected_revision=stored.mod_revision)
    await eventually(lambda: cluster.status("lee")["recordRevision"] == adopted)
    assert operator.runtime.metrics.etcd_write_count() == 1

    # Changed to another password (e.g. with pymilvus): repaired.
    other = CredentialRecord("lee", hash_password("someone-elses-1", 4))
    changed = await store.update(other, expected_revision=adopted)

    async def repaired() -> bool:
        now = await store.get("lee")
        return (
            now is not None
            and now.mod_revision > changed
            and verify_password(PASSWORD, now.record.encrypted_password)
        )

    await eventually(repaired)
    await asyncio.sleep(1.5)  # a few more resyncs: nothing left to do
    assert operator.runtime.metrics.etcd_write_count() == 2


async def test_deletion_waits_for_etcd_and_says_so(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, etcd: EtcdServer
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("max-password", PASSWORD)
    await cluster.create_user(
        "max", {"username": "max", "passwordSecretRef": {"name": "max-password"}}
    )
    await eventually(lambda: cluster.reason("max") == "Applied")

    etcd.stop()
    try:
        await cluster.delete_user("max")
        await eventually(lambda: cluster.reason("max") == "EtcdUnavailable", within=20)
        assert "deletion waits for etcd" in cluster.condition("max")["message"]
        assert "auth.milvus.io/finalizer" in cluster.user("max")["metadata"]["finalizers"]
    finally:
        etcd.start()
    await etcd_answering(store)
    await eventually(lambda: cluster.user("max") is None, within=30)
    assert await store.get("max") is None


async def test_etcd_down_at_creation_is_reported_then_applied(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, etcd: EtcdServer
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("nora-password", PASSWORD)
    etcd.stop()
    try:
        await cluster.create_user(
            "nora", {"username": "nora", "passwordSecretRef": {"name": "nora-password"}}
        )
        await eventually(lambda: cluster.reason("nora") == "EtcdUnavailable", within=20)
        assert cluster.condition("nora", "Reconciling")["status"] == "True"
    finally:
        etcd.start()
    await etcd_answering(store)
    await eventually(lambda: cluster.reason("nora") == "Applied", within=30)
    assert await store.get("nora") is not None


async def test_resyncs_with_nothing_to_do_patch_nothing(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    operator = await start_operator(notifier=FakeNotifier(), resync_period=0.3)
    await cluster.put_secret("olive-password", PASSWORD)
    await cluster.create_user(
        "olive", {"username": "olive", "passwordSecretRef": {"name": "olive-password"}}
    )
    await eventually(lambda: cluster.reason("olive") == "Applied")
    await asyncio.sleep(1.0)  # let the trigger and first resyncs settle
    versions = len(cluster.user_history("olive"))
    reconciles = operator.runtime.metrics.reconciles.labels("Applied")._value.get()
    await asyncio.sleep(1.5)
    assert operator.runtime.metrics.reconciles.labels("Applied")._value.get() > reconciles + 2
    assert len(cluster.user_history("olive")) == versions
