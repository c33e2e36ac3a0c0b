"""MilvusRole and MilvusUser.spec.roles against kmock and a real etcd (recording notifier)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from milvus_auth.core import KeyLayout
from milvus_auth.core.grants import GrantTarget, RbacLayout
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.store import CredentialStore, EtcdSettings, PolicyStore
from tests.harness.processes import EtcdServer
from tests.operator.cluster import NAMESPACE, Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator, etcd_answering

DOCS = {"privileges": ["Search", "Query"], "database": "analytics", "collection": "docs"}


@pytest.fixture
async def policy(etcd_settings: EtcdSettings, layout: KeyLayout) -> AsyncIterator[PolicyStore]:
    async with PolicyStore(etcd_settings, RbacLayout(layout.meta_root)) as store:
        yield store


def docs(role: str = "docs_reader") -> GrantTarget:
    return GrantTarget(role, ObjectType.COLLECTION, "analytics", "docs")


def held(snapshot: PolicySnapshot, role: str) -> set[tuple[GrantTarget, str, str]]:
    return {(g.target, g.privilege, g.grantor) for g in snapshot.grants_of(role)}


def reasons(cluster: Cluster) -> list[str]:
    return [str(event.get("reason")) for event in cluster.events()]


def messages(cluster: Cluster, reason: str) -> list[str]:
    return [str(e.get("message")) for e in cluster.events() if e.get("reason") == reason]


async def test_create_writes_the_grants_and_reports_ready(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    notifier = FakeNotifier(total=2)
    await start_operator(notifier=notifier)
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})

    await eventually(lambda: cluster.role_reason("reader") == "Applied", what="role Ready")
    snapshot = await policy.snapshot()
    assert "docs_reader" in snapshot.roles
    assert held(snapshot, "docs_reader") == {
        (docs(), "PrivilegeSearch", "root"),
        (docs(), "PrivilegeQuery", "root"),
    }
    status = cluster.role_status("reader")
    assert status["grants"] == 2
    assert status["proxies"] == {"updated": 2, "total": 2, "summary": "2/2"}
    assert status["observedGeneration"] == 1
    assert status["roleName"] == "docs_reader"
    assert "lastAppliedTime" in status
    assert notifier.refreshes >= 1
    assert "auth.milvus.io/finalizer" in (cluster.role("reader") or {})["metadata"]["finalizers"]
    assert reasons(cluster).count("Created") == 1


async def test_grant_changes_add_and_revoke_exactly_the_difference(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await eventually(lambda: cluster.role_reason("reader") == "Applied")

    changed = {**DOCS, "privileges": ["Search", "Insert"]}
    await cluster.patch_role(
        "reader", {"metadata": {"generation": 2}, "spec": {"grants": [changed]}}
    )
    await eventually(lambda: cluster.role_status("reader").get("observedGeneration") == 2)
    await eventually(lambda: cluster.role_reason("reader") == "Applied")
    assert held(await policy.snapshot(), "docs_reader") == {
        (docs(), "PrivilegeSearch", "root"),
        (docs(), "PrivilegeInsert", "root"),
    }
    (updated,) = messages(cluster, "Updated")
    assert updated == (
        "granted Insert on Collection analytics.docs; revoked Query on Collection analytics.docs"
    )
    assert "DriftRepaired" not in reasons(cluster)


async def test_resync_repairs_drift_and_names_what_it_revoked(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier(), resync_period=0.5)
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await eventually(lambda: cluster.role_reason("reader") == "Applied")

    await policy.revoke(docs(), "PrivilegeQuery")  # by hand, behind the operator's back
    await policy.grant(docs(), "PrivilegeDropIndex", "root")
    await eventually(lambda: "DriftRepaired" in reasons(cluster), what="drift repaired")
    assert held(await policy.snapshot(), "docs_reader") == {
        (docs(), "PrivilegeSearch", "root"),
        (docs(), "PrivilegeQuery", "root"),
    }
    (repaired,) = messages(cluster, "DriftRepaired")
    assert "granted Query on Collection analytics.docs" in repaired
    assert "revoked DropIndex on Collection analytics.docs" in repaired


async def test_delete_drops_the_role_its_grants_and_mappings(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("alice-password", "Alice-password-1")
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await cluster.create_user(
        "alice",
        {
            "username": "alice",
            "passwordSecretRef": {"name": "alice-password"},
            "roles": ["docs_reader"],
        },
    )
    await eventually(lambda: cluster.reason("alice") == "Applied", what="alice Ready")
    assert ("alice", "docs_reader") in (await policy.snapshot()).bindings

    await cluster.delete_role("reader")
    await eventually(lambda: cluster.role("reader") is None, what="finalizer removed")
    snapshot = await policy.snapshot()
    assert "docs_reader" not in snapshot.roles
    assert snapshot.grants_of("docs_reader") == ()
    assert ("alice", "docs_reader") not in snapshot.bindings
    assert "dropped Milvus role docs_reader" in messages(cluster, "Deleted")[0]
    # The user still names the role: it says so instead of staying Ready.
    await eventually(lambda: cluster.reason("alice") == "RoleNotFound", what="alice RoleNotFound")
    assert "docs_reader" in cluster.condition("alice")["message"]


async def test_retain_leaves_milvus_untouched(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    spec = {"roleName": "docs_reader", "grants": [DOCS], "deletionPolicy": "Retain"}
    await cluster.create_role("reader", spec)
    await eventually(lambda: cluster.role_reason("reader") == "Applied")
    before = await policy.snapshot()

    await cluster.delete_role("reader")
    await eventually(lambda: cluster.role("reader") is None)
    after = await policy.snapshot()
    assert after.revision == before.revision + 1  # only the claim's release was written
    assert held(after, "docs_reader") == held(before, "docs_reader")
    assert "deletionPolicy is Retain" in messages(cluster, "Retained")[0]


async def test_a_second_resource_for_one_role_is_a_conflict(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await eventually(lambda: cluster.role_reason("reader") == "Applied")
    before = await policy.snapshot()

    other = {"roleName": "docs_reader", "grants": [{"privileges": ["Insert"]}]}
    await cluster.create_role("thief", other)
    await eventually(lambda: cluster.role_reason("thief") == "Conflict")
    assert (
        f"managed by {NAMESPACE}/reader" in cluster.role_status("thief")["conditions"][0]["message"]
    )
    assert (await policy.snapshot()).revision == before.revision


async def test_a_rename_is_refused_and_the_old_role_kept(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await eventually(lambda: cluster.role_reason("reader") == "Applied")
    before = await policy.snapshot()

    await cluster.patch_role("reader", {"metadata": {"generation": 2}, "spec": {"roleName": "x"}})
    await eventually(lambda: cluster.role_reason("reader") == "InvalidSpec")
    assert "immutable" in cluster.role_status("reader")["conditions"][0]["message"]
    assert (await policy.snapshot()).revision == before.revision

    await cluster.delete_role("reader")  # drops the role it manages, not the new name
    await eventually(lambda: cluster.role("reader") is None)
    assert "docs_reader" not in (await policy.snapshot()).roles


async def test_invalid_grants_are_stalled_naming_the_entry_with_nothing_written(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    before = await policy.snapshot()
    bad = {"roleName": "r", "grants": [DOCS, {"privileges": ["Serch"]}]}
    await cluster.create_role("bad", bad)
    await eventually(lambda: cluster.role_reason("bad") == "InvalidSpec")
    condition = cluster.role_status("bad")["conditions"]
    assert condition[0]["message"].startswith("spec.grants[1] Serch: not found")
    assert condition[2] == {**condition[2], "type": "Stalled", "status": "True"}
    assert (await policy.snapshot()).revision == before.revision


async def test_a_user_waits_for_its_role_then_becomes_ready(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    await cluster.put_secret("bob-password", "Bob-password-12")
    user = {"username": "bob", "passwordSecretRef": {"name": "bob-password"}}
    await cluster.create_user("bob", {**user, "roles": ["docs_reader"]})
    await eventually(lambda: cluster.reason("bob") == "RoleNotFound")
    assert cluster.status("bob").get("passwordVersion")  # the password still applied
    assert (await policy.snapshot()).roles_of("bob") == frozenset()

    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    # Far sooner than the retry backoff's ceiling: the role marks the user.
    await eventually(lambda: cluster.reason("bob") == "Applied", within=10)
    assert (await policy.snapshot()).roles_of("bob") == frozenset({"docs_reader"})
    annotations = (cluster.user("bob") or {})["metadata"]["annotations"]
    assert annotations["trigger.auth.milvus.io/role"].startswith("docs_reader:present:")


async def test_spec_roles_is_authoritative_only_when_set(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier())
    for role in ("a", "b"):
        await policy.create_role(role)
    await cluster.put_secret("carol-password", "Carol-password-1")
    await cluster.put_secret("dave-password", "Dave-password-12")
    await cluster.create_user(
        "dave", {"username": "dave", "passwordSecretRef": {"name": "dave-password"}}
    )
    await eventually(lambda: cluster.reason("dave") == "Applied")
    await policy.bind("dave", "a")  # made with pymilvus, say: no spec.roles, left alone
    carol = {"username": "carol", "passwordSecretRef": {"name": "carol-password"}}
    await cluster.create_user("carol", {**carol, "roles": ["a"]})
    await eventually(lambda: cluster.reason("carol") == "Applied")
    await policy.bind("carol", "b")  # by hand: spec.roles says otherwise

    await cluster.patch_user("carol", {"metadata": {"generation": 2}, "spec": {"roles": ["b"]}})
    await eventually(lambda: cluster.status("carol").get("observedGeneration") == 2)
    await eventually(lambda: cluster.reason("carol") == "Applied")
    snapshot = await policy.snapshot()
    assert snapshot.roles_of("carol") == frozenset({"b"})
    assert snapshot.roles_of("dave") == frozenset({"a"})


async def test_restart_with_unchanged_roles_and_bound_users_writes_nothing(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    roles, users = 20, 5
    first = await start_operator(notifier=FakeNotifier())
    for index in range(roles):
        await cluster.create_role(f"r{index}", {"roleName": f"role_{index}", "grants": [DOCS]})
    for index in range(users):
        await cluster.put_secret(f"u{index}-password", f"User-password-{index}x")
        spec = {
            "username": f"user_{index}",
            "passwordSecretRef": {"name": f"u{index}-password"},
            "roles": [f"role_{index}", f"role_{index + 1}"],
        }
        await cluster.create_user(f"u{index}", spec)
    for index in range(roles):
        await eventually(lambda i=index: cluster.role_reason(f"r{i}") == "Applied")  # type: ignore[misc]
    for index in range(users):
        await eventually(lambda i=index: cluster.reason(f"u{i}") == "Applied")  # type: ignore[misc]
    await first.stop()
    snapshot = await policy.snapshot()
    assert snapshot.roles_of("user_0") == {"role_0", "role_1"}
    versions = {index: len(cluster.role_history(f"r{index}")) for index in range(roles)}

    notifier = FakeNotifier()
    second = await start_operator(notifier=notifier)
    # Every reconcile counts, whatever its result: on a loaded machine one may wait for etcd
    # or kmock first, and that must not write either.
    reconciles = "milvus_auth_operator_reconciles_total"
    await eventually(
        lambda: sum(second.runtime.metrics._sample_total(reconciles)) >= roles + users,
        within=40,  # two cores shared with other sessions
        what="every role and user resumed",
    )
    assert (await policy.snapshot()).revision == snapshot.revision
    assert second.runtime.metrics.etcd_write_count() == 0
    assert notifier.refreshes == 0
    assert notifier.updates == []
    assert {index: len(cluster.role_history(f"r{index}")) for index in range(roles)} == versions


async def test_etcd_down_is_reported_then_the_role_applied(
    cluster: Cluster,
    start_operator: StartOperator,
    policy: PolicyStore,
    store: CredentialStore,
    etcd: EtcdServer,
) -> None:
    await start_operator(notifier=FakeNotifier())
    etcd.stop()
    try:
        await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
        await eventually(lambda: cluster.role_reason("reader") == "EtcdUnavailable", within=20)
        ready = cluster.role_status("reader")["conditions"][0]
        assert ready["status"] == "False"
    finally:
        etcd.start()
    await etcd_answering(store)
    await eventually(lambda: cluster.role_reason("reader") == "Applied", within=30)
    assert len((await policy.snapshot()).grants_of("docs_reader")) == 2


async def test_resyncs_with_nothing_to_do_patch_and_write_nothing(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    notifier = FakeNotifier()
    operator = await start_operator(notifier=notifier, resync_period=0.3)
    await cluster.create_role("reader", {"roleName": "docs_reader", "grants": [DOCS]})
    await eventually(lambda: cluster.role_reason("reader") == "Applied")
    await asyncio.sleep(1.0)  # let the first resyncs settle
    versions, refreshes = len(cluster.role_history("reader")), notifier.refreshes
    revision = (await policy.snapshot()).revision
    reconciles = operator.runtime.metrics.reconciles.labels("Applied")._value.get()
    await asyncio.sleep(1.5)
    assert operator.runtime.metrics.reconciles.labels("Applied")._value.get() > reconciles + 2
    assert len(cluster.role_history("reader")) == versions
    assert notifier.refreshes == refreshes
    assert (await policy.snapshot()).revision == revision
