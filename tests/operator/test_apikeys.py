"""MilvusAPIKey against kmock and a real etcd: issue, tenancy, rotation, schedule, expiry,
deletion. No key, secret part or hash may show in a resource, an Event or a log line."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest

from milvus_auth.core import CredentialRecord, KeyLayout, hash_password
from milvus_auth.core.apikeys import ApiKey, ApiKeyRecord, generate_api_key, parse_api_key
from milvus_auth.core.grants import RbacLayout
from milvus_auth.operator.apikeys.secret import API_KEY_LABEL
from milvus_auth.store import ApiKeyStore, CredentialStore, EtcdSettings, PolicyStore
from milvus_auth.store.apikeys import StoredApiKey
from tests.operator.cluster import KEYS, NAMESPACE, SECRETS, Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator

PRIVILEGED = "ops"
TENANCY = {"namespaces": (NAMESPACE, PRIVILEGED), "privileged_namespaces": frozenset({PRIVILEGED})}
SECRET = "etl-milvus-api-key"


@pytest.fixture
async def keys(etcd_settings: EtcdSettings, layout: KeyLayout) -> AsyncIterator[ApiKeyStore]:
    async with ApiKeyStore(etcd_settings, layout.meta_root) as store:
        yield store


@pytest.fixture
async def policy(etcd_settings: EtcdSettings, layout: KeyLayout) -> AsyncIterator[PolicyStore]:
    async with PolicyStore(etcd_settings, RbacLayout(layout.meta_root)) as store:
        yield store


@pytest.fixture(autouse=True)
async def no_key_published(
    caplog: pytest.LogCaptureFixture, cluster: Cluster
) -> AsyncIterator[None]:
    """After every test: no token, secret part or hash of any key the operator ever wrote into
    a Secret is in a log line, an Event, or any version of any MilvusAPIKey."""
    yield
    written = [s for s in cluster.all_versions(SECRETS) if _labels(s).get(API_KEY_LABEL)]
    issued = [key for secret in written if (key := _key_in(secret))]
    assert issued or not written
    secrets = {text for key in issued for text in (key.token, key.secret, key.secret_hash)}
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    published = "\n".join(record.getMessage() for record in records)
    published += json.dumps(cluster.all_versions(KEYS)) + json.dumps(cluster.events())
    assert all(secret not in published for secret in secrets), "a key was published"


def _labels(secret: dict[str, Any]) -> dict[str, str]:
    return dict(secret["metadata"].get("labels") or {})


def _key_in(secret: dict[str, Any]) -> ApiKey | None:
    token = (secret.get("data") or {}).get("token")
    return None if token is None else parse_api_key(base64.b64decode(token).decode())


def secret_of(cluster: Cluster, name: str = SECRET, namespace: str = NAMESPACE) -> dict[str, Any]:
    key = (kmock.resource(SECRETS), namespace, name)
    assert key in cluster.api.objects
    assert not cluster.api.objects[key].deleted
    raw: dict[str, Any] = cluster.api.objects[key].raw
    return raw


def key_in_secret(cluster: Cluster, namespace: str = NAMESPACE) -> ApiKey:
    key = _key_in(secret_of(cluster, namespace=namespace))
    assert key is not None
    return key


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


async def owned(keys: ApiKeyStore, owner: str = f"{NAMESPACE}/etl") -> dict[str, ApiKeyRecord]:
    return {s.record.key_id: s.record for s in await keys.list() if s.record.owner == owner}


async def etl_user(cluster: Cluster) -> None:
    """MilvusUser etl (generated password) in the tenant namespace, applied."""
    await cluster.create_user("etl-user", {"username": "etl"})
    await eventually(lambda: cluster.reason("etl-user") == "Applied", what="etl user Ready")


async def test_issues_a_key_into_an_owned_secret_and_stores_only_its_hash(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    labels = {"app": "etl"}
    spec = {"username": "etl", "expiresAfter": "720h", "secretTemplate": {"labels": labels}}
    await cluster.create_key("etl", spec)
    await eventually(lambda: cluster.key_reason("etl") == "Applied", what="key Ready")

    secret = secret_of(cluster)
    meta = secret["metadata"]
    assert meta["ownerReferences"][0]["kind"] == "MilvusAPIKey"
    assert meta["ownerReferences"][0]["uid"] == f"uid-key-{NAMESPACE}-etl"
    assert meta["labels"]["app"] == "etl"
    assert meta["labels"]["auth.milvus.io/api-key"] == "true"
    data = decoded(secret)
    key = parse_api_key(data["token"])
    assert data["username"] == "etl"
    status = cluster.key_status("etl")
    assert status["keyId"] == key.key_id
    assert data["expiresAt"] == status["expiresAt"]
    (record,) = (await owned(keys)).values()
    assert record.key_id == key.key_id
    assert record.matches(key)
    assert record.username == "etl"
    assert record.name == "etl"
    assert record.expires_at is not None
    assert record.expires_at - record.issued_at == 720 * 3600
    assert status["observedGeneration"] == 1
    assert "auth.milvus.io/finalizer" in (cluster.key("etl") or {})["metadata"]["finalizers"]
    assert [e["reason"] for e in cluster.events() if e["reason"] == "Issued"] == ["Issued"]


async def test_a_key_is_kept_across_reconciles_and_restarts(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    first = await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    key = key_in_secret(cluster)
    await first.stop()
    versions = len(cluster.all_versions(KEYS))

    second = await start_operator(notifier=FakeNotifier(), resync_period=0.3)
    applied = second.runtime.metrics.reconciles.labels("Applied")
    await eventually(lambda: applied._value.get() >= 4, what="resumed, then resynced")
    assert key_in_secret(cluster) == key
    assert list(await owned(keys)) == [key.key_id]
    assert len(cluster.all_versions(KEYS)) == versions  # no status churn either
    assert second.runtime.metrics.etcd_write_count() == 0


TENANT_CASES = {
    "unclaimed-user": ("made", "a user no MilvusUser of its namespace manages"),
    "admin-user": ("etl", "root or a user bound to an elevated role"),
    "root": ("root", "root or a user bound to an elevated role"),
}


@pytest.mark.parametrize(("username", "rule"), TENANT_CASES.values(), ids=TENANT_CASES)
async def test_tenants_may_not_mint_keys_for_others_or_for_elevated_users(
    cluster: Cluster,
    start_operator: StartOperator,
    store: CredentialStore,
    policy: PolicyStore,
    keys: ApiKeyStore,
    username: str,
    rule: str,
) -> None:
    await start_operator(notifier=FakeNotifier(), **TENANCY)
    await etl_user(cluster)
    await policy.create_role("admin")
    await policy.bind("etl", "admin")  # someone privileged bound the tenant's user to admin
    await store.create(made_with_pymilvus("made"))
    await cluster.create_key("etl", {"username": username})

    await eventually(lambda: cluster.key_reason("etl") == "NotPermitted")
    assert rule in cluster.key_condition("etl")["message"]
    assert cluster.key_condition("etl", "Stalled")["status"] == "True"
    assert await keys.list() == []
    assert (kmock.resource(SECRETS), NAMESPACE, SECRET) not in cluster.api.objects


def made_with_pymilvus(username: str) -> CredentialRecord:
    return CredentialRecord(username, hash_password("Made-with-pymilvus-1", 4))


async def test_privileged_namespaces_may_mint_for_any_user_that_exists(
    cluster: Cluster, start_operator: StartOperator, store: CredentialStore, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier(), **TENANCY)
    await cluster.create_key("etl", {"username": "made"}, namespace=PRIVILEGED)
    await eventually(lambda: cluster.key_reason("etl", PRIVILEGED) == "UserNotFound")
    assert "does not exist" in cluster.key_condition("etl", namespace=PRIVILEGED)["message"]
    assert cluster.key_condition("etl", "Reconciling", PRIVILEGED)["status"] == "True"
    assert await keys.list() == []

    await store.create(made_with_pymilvus("made"))  # the retry picks it up
    await eventually(lambda: cluster.key_reason("etl", PRIVILEGED) == "Applied", within=30)
    assert (
        key_in_secret(cluster, PRIVILEGED).key_id == cluster.key_status("etl", PRIVILEGED)["keyId"]
    )
    assert list(await owned(keys, f"{PRIVILEGED}/etl")) == [
        key_in_secret(cluster, PRIVILEGED).key_id
    ]


async def test_a_tenant_key_whose_user_became_elevated_is_revoked(
    cluster: Cluster,
    start_operator: StartOperator,
    policy: PolicyStore,
    keys: ApiKeyStore,
) -> None:
    await start_operator(notifier=FakeNotifier(), resync_period=0.5, **TENANCY)
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    key = key_in_secret(cluster)

    await policy.create_role("admin")
    await policy.bind("etl", "admin")
    await eventually(lambda: cluster.key_reason("etl") == "NotPermitted", what="resync refused")
    assert (
        f"revoked the keys it had issued ({key.key_id})" in cluster.key_condition("etl")["message"]
    )
    assert await keys.list() == []
    assert "keyId" not in cluster.key_status("etl")


async def test_a_secret_of_someone_else_is_never_overwritten(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.put_secret(SECRET, "not-the-operators", key="token")
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Conflict")
    assert await keys.list() == []
    assert decoded(secret_of(cluster))["token"] == "not-the-operators"


async def test_rotation_keeps_the_old_key_for_the_grace_period_then_removes_it(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl", "rotationGracePeriod": "3s"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    old = key_in_secret(cluster)

    await cluster.patch_key("etl", {"metadata": {"generation": 2}, "spec": {"rotation": "2"}})
    await eventually(lambda: key_in_secret(cluster) != old, what="a new key in the Secret")
    new = key_in_secret(cluster)
    await eventually(lambda: cluster.key_status("etl").get("keyId") == new.key_id)
    records = await owned(keys)
    assert set(records) == {old.key_id, new.key_id}
    grace_end = records[old.key_id].expires_at
    assert grace_end is not None
    assert 0 < grace_end - time.time() <= 3
    assert cluster.key_status("etl")["previousKeyExpiresAt"]
    assert secret_of(cluster)["metadata"]["annotations"]["auth.milvus.io/rotation"] == "2"

    # The daemon wakes at the grace period's end: the old record goes, and so does the field.
    async def old_removed() -> bool:
        return set(await owned(keys)) == {new.key_id}

    await eventually(old_removed, within=15, what="the previous key removed")
    await eventually(lambda: "previousKeyExpiresAt" not in cluster.key_status("etl"))
    assert cluster.key_reason("etl") == "Applied"
    removed = [e["message"] for e in cluster.events() if e["reason"] == "Removed"]
    assert removed == [f"removed key {old.key_id}"]


async def test_a_deleted_secret_gets_a_new_key_at_once(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())  # resync 300 s: only the watch can do it
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    old = key_in_secret(cluster)

    await cluster.delete_secret(SECRET)
    await eventually(
        lambda: (
            (kmock.resource(SECRETS), NAMESPACE, SECRET) in cluster.api.objects
            and not cluster.api.objects[kmock.resource(SECRETS), NAMESPACE, SECRET].deleted
        ),
        what="the Secret written again",
    )
    new = key_in_secret(cluster)
    assert new != old
    records = await owned(keys)
    assert set(records) == {old.key_id, new.key_id}  # the old one in its grace period
    await eventually(lambda: _count(cluster, "Issued") == 2)
    issued = [e["message"] for e in cluster.events() if e["reason"] == "Issued"]
    because = "the Secret did not hold a valid key of this resource"
    assert sorted(message.endswith(because) for message in issued) == [False, True]


async def test_rotate_every_issues_keys_on_schedule(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    spec = {"username": "etl", "rotateEvery": "2s", "rotationGracePeriod": "1s"}
    await cluster.create_key("etl", spec)
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    first = key_in_secret(cluster)
    assert cluster.key_status("etl")["nextRotationTime"]

    await eventually(lambda: key_in_secret(cluster) != first, within=15, what="rotated")
    second = key_in_secret(cluster)
    await eventually(lambda: key_in_secret(cluster) != second, within=15, what="rotated again")

    def scheduled() -> int:  # Events are posted just after the reconcile that wrote the Secret
        return sum(1 for e in cluster.events() if "rotateEvery" in e["message"])

    await eventually(lambda: scheduled() >= 2, what="two scheduled rotations")

    async def only_current() -> bool:  # each previous key ends one second after its rotation
        return set(await owned(keys)) == {key_in_secret(cluster).key_id}

    await cluster.patch_key("etl", {"spec": {"rotateEvery": None}})
    await eventually(only_current, within=15, what="previous keys removed")


async def test_an_expired_key_is_reported_not_replaced(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl", "expiresAfter": "2s"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    key = key_in_secret(cluster)

    await eventually(lambda: cluster.key_reason("etl") == "Expired", within=15)
    assert cluster.key_condition("etl", "Stalled")["status"] == "True"
    assert key_in_secret(cluster) == key
    assert list(await owned(keys)) == [key.key_id]
    warnings = [e for e in cluster.events() if e["reason"] == "Expired"]
    assert warnings[0]["type"] == "Warning"

    await cluster.patch_key("etl", {"metadata": {"generation": 2}, "spec": {"rotation": "new"}})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    assert key_in_secret(cluster) != key


async def test_deletion_revokes_every_key_then_releases_the_finalizer(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    await cluster.patch_key("etl", {"metadata": {"generation": 2}, "spec": {"rotation": "2"}})
    await eventually(lambda: len(cluster.events()) and _count(cluster, "Issued") == 2)
    assert len(await owned(keys)) == 2

    await cluster.delete_key("etl")
    await eventually(lambda: cluster.key("etl") is None, what="finalizer released")
    assert await owned(keys) == {}
    (revoked,) = [e["message"] for e in cluster.events() if e["reason"] == "Revoked"]
    assert revoked.startswith("revoked key ")


def _count(cluster: Cluster, reason: str) -> int:
    return sum(1 for e in cluster.events() if e["reason"] == reason)


async def test_keys_issued_by_the_cli_are_never_touched(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    cli = generate_api_key()
    record = ApiKeyRecord(cli.key_id, "etl", cli.secret_hash, int(time.time()))
    await keys.create(record)
    await start_operator(notifier=FakeNotifier())
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    await cluster.delete_key("etl")
    await eventually(lambda: cluster.key("etl") is None)
    stored = await keys.get(cli.key_id)
    assert isinstance(stored, StoredApiKey)
    assert stored.record == record


async def test_last_use_stamped_by_a_proxy_shows_in_the_status_at_resync(
    cluster: Cluster, start_operator: StartOperator, keys: ApiKeyStore
) -> None:
    await start_operator(notifier=FakeNotifier(), resync_period=0.5)
    await etl_user(cluster)
    await cluster.create_key("etl", {"username": "etl"})
    await eventually(lambda: cluster.key_reason("etl") == "Applied")
    assert "lastUsedTime" not in cluster.key_status("etl")
    key = key_in_secret(cluster)

    stored = await keys.get(key.key_id)
    assert stored is not None
    used = int(time.time()) // 60 * 60
    await keys.touch(stored, used)  # what a proxy's batched last-use stamp writes
    await eventually(lambda: cluster.key_status("etl").get("lastUsedTime") is not None)
    assert cluster.key_status("etl")["lastUsedTime"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(used)
    )
    assert key_in_secret(cluster) == key  # a stamp is no change of the key
