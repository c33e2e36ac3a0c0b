"""Generated passwords: an owned Secret, reused, regenerated only when deleted or rotated."""

from __future__ import annotations

import base64

from milvus_auth.core import verify_password
from milvus_auth.store import CredentialStore
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator

SECRET = "ivy-milvus-credentials"


def _password(cluster: Cluster) -> str:
    secret = cluster.secret(SECRET)
    assert secret is not None
    return base64.b64decode(secret["data"]["password"]).decode()


async def test_generated_secret_is_owned_labelled_and_logs_in(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_user(
        "ivy", {"username": "ivy", "secretTemplate": {"labels": {"team": "search"}}}
    )
    await eventually(lambda: cluster.reason("ivy") == "Applied")
    secret = cluster.secret(SECRET)
    assert secret is not None
    meta = secret["metadata"]
    assert meta["ownerReferences"][0]["uid"] == "uid-ivy"
    assert meta["ownerReferences"][0]["kind"] == "MilvusUser"
    assert meta["labels"]["team"] == "search"
    assert meta["labels"]["auth.milvus.io/watch"] == "true"
    assert base64.b64decode(secret["data"]["username"]) == b"ivy"
    password = _password(cluster)
    assert len(password) >= 32
    stored = await store.get("ivy")
    assert stored is not None
    assert verify_password(password, stored.record.encrypted_password)


async def test_generated_password_is_kept_across_reconciles_and_restarts(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    first = await start_operator(notifier=FakeNotifier())
    await cluster.create_user("ivy", {"username": "ivy"})
    await eventually(lambda: cluster.reason("ivy") == "Applied")
    password = _password(cluster)
    revision = cluster.status("ivy")["recordRevision"]
    await first.stop()

    metrics = (await start_operator(notifier=FakeNotifier())).runtime.metrics  # resumes ivy
    await eventually(lambda: metrics.reconciles.labels("Applied")._value.get() == 1.0)
    assert metrics.bcrypt_count() == 0
    assert _password(cluster) == password
    stored = await store.get("ivy")
    assert stored is not None
    assert stored.mod_revision == revision


async def test_rotation_or_deletion_regenerates_the_password(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_user("ivy", {"username": "ivy"})
    await eventually(lambda: cluster.reason("ivy") == "Applied")
    first = _password(cluster)

    await cluster.patch_user(
        "ivy", {"spec": {"rotation": "2026-11"}, "metadata": {"generation": 2}}
    )
    await eventually(lambda: _password(cluster) != first)
    await eventually(lambda: cluster.status("ivy").get("observedGeneration") == 2)
    second = _password(cluster)
    stored = await store.get("ivy")
    assert stored is not None
    assert verify_password(second, stored.record.encrypted_password)

    await cluster.delete_secret(SECRET)
    await eventually(lambda: cluster.secret(SECRET) is not None and _password(cluster) != second)
    third = _password(cluster)

    # Not "wait for Applied": the condition already says Applied from before the deletion.
    async def third_is_stored() -> bool:
        stored = await store.get("ivy")
        return stored is not None and verify_password(third, stored.record.encrypted_password)

    await eventually(third_is_stored)
    await eventually(lambda: cluster.reason("ivy") == "Applied")


async def test_a_foreign_secret_with_the_generated_name_is_never_overwritten(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret(SECRET, "not-the-operators-1")
    await cluster.create_user("ivy", {"username": "ivy"})
    await eventually(lambda: cluster.reason("ivy") == "Conflict")
    assert "not owned by this MilvusUser" in cluster.condition("ivy")["message"]
    assert _password(cluster) == "not-the-operators-1"
    assert await store.get("ivy") is None
