"""Tenancy: every escalation through MilvusRole or spec.roles from a tenant namespace is
refused with NotPermitted, naming the rule, and leaves etcd exactly as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any

import pytest

from milvus_auth.core import KeyLayout
from milvus_auth.core.grants import GrantTarget, RbacLayout
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import ObjectType
from milvus_auth.store import CredentialStore, EtcdSettings, PolicyStore
from tests.operator.cluster import NAMESPACE, Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator

PRIVILEGED = "ops"
TENANCY = {
    "namespaces": (NAMESPACE, PRIVILEGED),
    "privileged_namespaces": frozenset({PRIVILEGED}),
    "namespace_databases": MappingProxyType({NAMESPACE: frozenset({"analytics"})}),
}
ELEVATED = "only resources in a privileged namespace (--privileged-namespaces of the operator)"


@pytest.fixture
async def policy(etcd_settings: EtcdSettings, layout: KeyLayout) -> AsyncIterator[PolicyStore]:
    async with PolicyStore(etcd_settings, RbacLayout(layout.meta_root)) as store:
        yield store


@pytest.fixture
async def handmade(policy: PolicyStore, store: CredentialStore) -> None:
    """Roles made with pymilvus, say: `legacy` (harmless), `ops_role` (ClusterAdmin); and a
    custom group `sneaky` whose members include a cluster-level privilege."""
    await policy.create_role("admin")
    await policy.create_role("legacy")
    await policy.create_role("ops_role")
    target = GrantTarget("ops_role", ObjectType.GLOBAL, "*", "*")
    await policy.grant(target, "PrivilegeGroupClusterAdmin", "root")
    await policy.create_group("sneaky")
    found = await policy.get_group("sneaky")
    assert found is not None
    group = PrivilegeGroup("sneaky", ("Search", "DropOwnership"))
    await policy.update_group(group, expected_revision=found[1])


def _grant(privileges: list[str], database: str = "analytics", collection: str = "*") -> Any:
    return {"privileges": privileges, "database": database, "collection": collection}


ROLE_CASES = {
    "cluster-group": (
        [_grant(["ClusterReadOnly"], "*", "*")],
        "new_role",
        f"{ELEVATED} may grant cluster-level or ownership privileges",
    ),
    "ownership": (
        [_grant(["CreateOwnership"], "*", "*")],
        "new_role",
        "grant cluster-level or ownership privileges",
    ),
    "everything": ([_grant(["*"], "*", "*")], "new_role", "grant cluster-level"),
    "custom-group": ([_grant(["sneaky"], "*", "*")], "new_role", "grant cluster-level"),
    "takeover": ([_grant(["Search"])], "legacy", "manage a Milvus role that the operator"),
    "other-database": ([_grant(["Search"], "ml")], "new_role", "not ml"),
    "every-database": ([_grant(["Search"], "*")], "new_role", "--namespace-databases"),
}


@pytest.mark.usefixtures("handmade")
@pytest.mark.parametrize(("grants", "role", "message"), ROLE_CASES.values(), ids=ROLE_CASES)
async def test_tenant_roles_cannot_escalate(
    cluster: Cluster,
    start_operator: StartOperator,
    policy: PolicyStore,
    grants: list[Any],
    role: str,
    message: str,
) -> None:
    notifier = FakeNotifier()
    await start_operator(notifier=notifier, **TENANCY)
    before = await policy.snapshot()
    await cluster.create_role("r", {"roleName": role, "grants": grants})

    await eventually(lambda: cluster.role_reason("r") == "NotPermitted")
    (ready, _, stalled) = cluster.role_status("r")["conditions"]
    assert message in ready["message"]
    assert stalled["status"] == "True"
    assert (await policy.snapshot()).revision == before.revision  # not even a claim
    assert notifier.refreshes == 0


USER_CASES = {
    "admin": (["admin"], "bind the admin role"),
    "elevated-role": (["ops_role"], "bind a role holding cluster-level or ownership"),
}


@pytest.mark.usefixtures("handmade")
@pytest.mark.parametrize(("roles", "message"), USER_CASES.values(), ids=USER_CASES)
async def test_tenant_users_cannot_bind_elevated_roles(
    cluster: Cluster,
    start_operator: StartOperator,
    policy: PolicyStore,
    store: CredentialStore,
    roles: list[str],
    message: str,
) -> None:
    await start_operator(notifier=FakeNotifier(), **TENANCY)
    before = await policy.snapshot()
    await cluster.put_secret("eve-password", "Eve-password-123")
    user = {"username": "eve", "passwordSecretRef": {"name": "eve-password"}, "roles": roles}
    await cluster.create_user("eve", user)

    await eventually(lambda: cluster.reason("eve") == "NotPermitted")
    assert f"{ELEVATED} may {message}" in cluster.condition("eve")["message"]
    assert await store.get("eve") is None  # not even the password
    assert (await policy.snapshot()).revision == before.revision


@pytest.mark.usefixtures("handmade")
async def test_privileged_namespaces_may_do_all_of_it(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore
) -> None:
    await start_operator(notifier=FakeNotifier(), **TENANCY)
    wide = {"roleName": "viewer", "grants": [_grant(["ClusterReadOnly"], "*", "*")]}
    await cluster.create_role("viewer", wide, namespace=PRIVILEGED)
    await cluster.create_role(
        "legacy", {"roleName": "legacy", "grants": [_grant(["Search"], "ml")]}, namespace=PRIVILEGED
    )
    await eventually(lambda: cluster.role_reason("viewer", PRIVILEGED) == "Applied")
    await eventually(lambda: cluster.role_reason("legacy", PRIVILEGED) == "Applied")
    taken = [e for e in cluster.events() if e.get("reason") == "TakenOver"]
    assert [e["message"] for e in taken] == [
        "took over the existing Milvus role legacy; its grants follow the spec"
    ]
    snapshot = await policy.snapshot()
    assert {g.target.database for g in snapshot.grants_of("legacy")} == {"ml"}


async def test_a_tenant_user_loses_its_mapping_when_its_role_becomes_elevated(
    cluster: Cluster, start_operator: StartOperator, policy: PolicyStore, store: CredentialStore
) -> None:
    notifier = FakeNotifier()
    await start_operator(notifier=notifier, **TENANCY)
    harmless = {"roleName": "shared", "grants": [_grant(["Search"])]}
    await cluster.create_role("shared", harmless, namespace=PRIVILEGED)
    await cluster.put_secret("eve-password", "Eve-password-123")
    user = {"username": "eve", "passwordSecretRef": {"name": "eve-password"}, "roles": ["shared"]}
    await cluster.create_user("eve", user)
    await eventually(lambda: cluster.reason("eve") == "Applied", what="eve bound")
    assert (await policy.snapshot()).roles_of("eve") == {"shared"}
    stored = await store.get("eve")

    # The privileged namespace widens its role: the tenant's binding would now hand out a
    # cluster-level power. The role's change marks eve, whose mapping goes at once.
    wide = [_grant(["Search"]), _grant(["ClusterReadOnly"], "*", "*")]
    refreshes = notifier.refreshes
    change = {"metadata": {"generation": 2}, "spec": {"grants": wide}}
    await cluster.patch_role("shared", change, namespace=PRIVILEGED)
    await eventually(lambda: cluster.reason("eve") == "NotPermitted", within=10)
    message = cluster.condition("eve")["message"]
    assert f"{ELEVATED} may bind a role holding cluster-level or ownership" in message
    assert message.endswith("; removed the user's mapping to shared")
    assert cluster.condition("eve", "Stalled")["status"] == "True"
    assert (await policy.snapshot()).roles_of("eve") == frozenset()
    assert notifier.refreshes > refreshes  # the proxies dropped the mapping too
    assert await store.get("eve") == stored  # the password is left as it was

    # Narrowed again: the role's change marks eve, who is bound and Ready again.
    narrow = {"metadata": {"generation": 3}, "spec": {"grants": [_grant(["Search"])]}}
    await cluster.patch_role("shared", narrow, namespace=PRIVILEGED)
    await eventually(lambda: cluster.reason("eve") == "Applied", within=10)
    assert (await policy.snapshot()).roles_of("eve") == {"shared"}
