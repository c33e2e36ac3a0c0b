"""The operator against kmock and a real etcd, with a recording notifier instead of proxies."""

from __future__ import annotations

import pytest

from milvus_auth.core import CredentialRecord, cache_digest, verify_password
from milvus_auth.store import CredentialStore
from tests.operator.cluster import NAMESPACE, Cluster, eventually
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


def _ref(secret: str) -> dict[str, object]:
    return {"passwordSecretRef": {"name": secret}}


async def test_secret_edit_rewrites_the_record_and_pushes_the_new_digest(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    notifier = FakeNotifier()
    await start_operator(notifier=notifier)
    await cluster.put_secret("bob-password", PASSWORD)
    await cluster.create_user("bob", {"username": "bob", **_ref("bob-password")})
    await eventually(lambda: cluster.reason("bob") == "Applied")
    first = cluster.status("bob")

    await cluster.put_secret("bob-password", "second-password-2")
    await eventually(
        lambda: cluster.status("bob").get("passwordVersion") != first["passwordVersion"]
    )
    await eventually(lambda: cluster.reason("bob") == "Applied")
    stored = await store.get("bob")
    assert stored is not None
    assert verify_password("second-password-2", stored.record.encrypted_password)
    assert cluster.status("bob")["recordRevision"] == stored.mod_revision > first["recordRevision"]
    assert notifier.updates[-1] == ("bob", cache_digest("bob", "second-password-2"))
    reasons = [event.get("reason") for event in cluster.events()]
    assert reasons.count("Created") == 1
    assert reasons.count("Updated") == 1
    # The operator never wrote to the user's Secret: every version is one the test made.
    versions = cluster.secret_history("bob-password")
    assert len(versions) == 2
    for version in versions:
        assert set(version["metadata"]) == {"name", "namespace", "uid", "labels", "resourceVersion"}


async def test_missing_secret_writes_nothing_until_it_appears(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_user("carol", {"username": "carol", **_ref("carol-password")})
    await eventually(lambda: cluster.reason("carol") == "SecretNotFound")
    assert "carol-password not found" in cluster.condition("carol")["message"]
    assert cluster.condition("carol", "Reconciling")["status"] == "True"
    assert await store.get("carol") is None

    await cluster.put_secret("carol-password", PASSWORD)
    await eventually(lambda: cluster.reason("carol") == "Applied")
    assert await store.get("carol") is not None


async def test_secret_deleted_later_keeps_the_record(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("dave-password", PASSWORD)
    await cluster.create_user("dave", {"username": "dave", **_ref("dave-password")})
    await eventually(lambda: cluster.reason("dave") == "Applied")
    before = await store.get("dave")

    await cluster.delete_secret("dave-password")
    await eventually(lambda: cluster.reason("dave") == "SecretNotFound")
    after = await store.get("dave")
    assert after is not None
    assert before is not None
    assert after.mod_revision == before.mod_revision
    assert verify_password(PASSWORD, after.record.encrypted_password)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"username": "1abc"}, "the first character must be a letter"),
        ({"username": "root"}, "root is refused unless spec.allowRoot is true"),
        ({"username": "a b"}, "can only include underscore"),
    ],
)
async def test_invalid_spec_stalls_and_writes_nothing(
    cluster: Cluster,
    start_operator: StartOperator,
    store: CredentialStore,
    spec: dict[str, object],
    message: str,
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("pw", PASSWORD)
    await cluster.create_user("bad", {**spec, **_ref("pw")})
    await eventually(lambda: cluster.reason("bad") == "InvalidSpec")
    assert message in cluster.condition("bad")["message"]
    assert cluster.condition("bad", "Stalled")["status"] == "True"
    assert await store.list_usernames() == []


async def test_root_with_allow_root_sets_roots_password(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier(), privileged_namespaces=frozenset({NAMESPACE}))
    await cluster.put_secret("root-password", PASSWORD)
    await cluster.create_user(
        "root", {"username": "root", "allowRoot": True, **_ref("root-password")}
    )
    await eventually(lambda: cluster.reason("root") == "Applied")
    await cluster.delete_user("root")
    await eventually(lambda: cluster.user("root") is None)
    stored = await store.get("root")
    assert stored is not None, "root is never deleted"


async def test_second_claim_on_a_username_is_a_conflict(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("first", PASSWORD)
    await cluster.put_secret("second", "another-password-3")
    await cluster.create_user("erin-a", {"username": "erin", **_ref("first")})
    await eventually(lambda: cluster.reason("erin-a") == "Applied")
    revision = cluster.status("erin-a")["recordRevision"]

    await cluster.create_user("erin-b", {"username": "erin", **_ref("second")})
    await eventually(lambda: cluster.reason("erin-b") == "Conflict")
    assert "already managed by team/erin-a" in cluster.condition("erin-b")["message"]
    assert cluster.condition("erin-b", "Stalled")["status"] == "True"
    stored = await store.get("erin")
    assert stored is not None
    assert stored.mod_revision == revision
    assert verify_password(PASSWORD, stored.record.encrypted_password)

    # The loser does not delete the winner's user.
    await cluster.delete_user("erin-b")
    await eventually(lambda: cluster.user("erin-b") is None)
    assert await store.get("erin") is not None


async def test_proxies_pending_until_every_proxy_confirms(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    notifier = FakeNotifier(total=2)
    notifier.updated = 1
    await start_operator(notifier=notifier)
    await cluster.put_secret("frank-password", PASSWORD)
    await cluster.create_user("frank", {"username": "frank", **_ref("frank-password")})
    await eventually(lambda: cluster.reason("frank") == "ProxiesPending")
    assert cluster.status("frank")["proxies"] == {"updated": 1, "total": 2, "summary": "1/2"}
    assert "1 of 2 proxies updated" in cluster.condition("frank")["message"]

    notifier.updated = 2
    await eventually(lambda: cluster.reason("frank") == "Applied")
    assert cluster.status("frank")["proxies"]["summary"] == "2/2"


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
async def test_deletion_policy(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, policy: str
) -> None:
    notifier = FakeNotifier()
    await start_operator(notifier=notifier)
    await cluster.put_secret("gina-password", PASSWORD)
    await cluster.create_user(
        "gina", {"username": "gina", "deletionPolicy": policy, **_ref("gina-password")}
    )
    await eventually(lambda: cluster.reason("gina") == "Applied")

    await cluster.delete_user("gina")
    await eventually(lambda: cluster.user("gina") is None)
    if policy == "Delete":
        assert await store.get("gina") is None
        assert notifier.invalidations == ["gina"]
    else:
        assert await store.get("gina") is not None
        assert notifier.invalidations == []


async def test_deleting_a_never_written_user_touches_nothing(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    notifier = FakeNotifier()
    await start_operator(notifier=notifier)
    await store.create(CredentialRecord("hank", "$2a$04$" + "a" * 53))  # made with pymilvus
    await cluster.create_user("hank", {"username": "hank", **_ref("missing")})
    await eventually(lambda: cluster.reason("hank") == "NotPermitted")
    await cluster.delete_user("hank")
    await eventually(lambda: cluster.user("hank") is None)
    assert await store.get("hank") is not None
    assert notifier.invalidations == []


async def test_a_record_nobody_can_read_is_left_for_a_human(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, meta_root: str
) -> None:
    key = f"{meta_root}/root-coord/credential/users/olga".encode()
    await store.connection.call(lambda c: c.put(key, b"not json"))
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("olga-password", PASSWORD)
    await cluster.create_user("olga", {"username": "olga", **_ref("olga-password")})
    await eventually(lambda: cluster.reason("olga") == "InvalidRecord")
    assert cluster.condition("olga", "Stalled")["status"] == "True"
    raw = await store.connection.call(lambda c: c.get(key))
    assert raw.value == b"not json"


async def test_all_namespaces_mode(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore
) -> None:
    await start_operator(notifier=FakeNotifier(), namespaces=(), all_namespaces=True)
    await cluster.put_secret("uma-password", PASSWORD)
    await cluster.create_user("uma", {"username": "uma", **_ref("uma-password")})
    await eventually(lambda: cluster.reason("uma") == "Applied")
    assert await store.get("uma") is not None
    await cluster.put_secret("uma-password", "second-password-2")

    async def rotated() -> bool:
        stored = await store.get("uma")
        return stored is not None and verify_password(
            "second-password-2", stored.record.encrypted_password
        )

    await eventually(rotated)
