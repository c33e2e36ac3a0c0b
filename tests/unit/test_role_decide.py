"""The MilvusRole decisions, table-tested: grants vs etcd, bindings, and who may ask for what."""

from __future__ import annotations

import pytest

from milvus_auth.core.grants import GrantTarget
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.operator.permissions import (
    Permissions,
    Privilege,
    elevated,
    parse_namespace_databases,
)
from milvus_auth.operator.resources import DeletionPolicy
from milvus_auth.operator.roles.decide import (
    BindingPlan,
    InvalidRole,
    binding_privileges,
    describe,
    desired_grants,
    plan_bindings,
    plan_role,
    role_privileges,
)
from milvus_auth.operator.roles.spec import GrantSpec, RoleSpec
from milvus_auth.store.claims import Claim, Origin

C, G = ObjectType.COLLECTION, ObjectType.GLOBAL


def spec(*grants: GrantSpec, role: str = "reader", namespace: str = "team") -> RoleSpec:
    return RoleSpec(namespace, "r", "uid-r", 1, role, grants)


def target(object_type: ObjectType, database: str, name: str, role: str = "reader") -> GrantTarget:
    return GrantTarget(role, object_type, database, name)


def snapshot(
    *grants: tuple[GrantTarget, str],
    roles: frozenset[str] = frozenset({"admin", "public", "reader"}),
    bindings: frozenset[tuple[str, str]] = frozenset(),
    groups: dict[str, PrivilegeGroup] | None = None,
) -> PolicySnapshot:
    stored = tuple(StoredGrant(t, p, "root") for t, p in grants)
    return PolicySnapshot(1, roles, bindings, stored, groups or {})


def test_body_parsing_applies_the_crd_defaults_and_tolerates_wrong_types() -> None:
    body = {
        "metadata": {"namespace": "team", "name": "r", "uid": "u", "generation": 3},
        "spec": {
            "roleName": "reader",
            "grants": [{"privileges": ["Search"]}, "junk"],
            "deletionPolicy": "Orphan",
        },
    }
    parsed = RoleSpec.from_body(body)
    assert parsed.grants == (GrantSpec(("Search",), "default", "*"),)
    assert parsed.deletion_policy is DeletionPolicy.DELETE
    assert parsed.owner == "team/r"


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (GrantSpec(("Search",)), {(target(C, "default", "*"), "PrivilegeSearch")}),
        (
            GrantSpec(("Search", "Query"), "analytics", "docs"),
            {
                (target(C, "analytics", "docs"), "PrivilegeSearch"),
                (target(C, "analytics", "docs"), "PrivilegeQuery"),
            },
        ),
        (
            GrantSpec(("DescribeCollection",), "analytics", "docs"),
            {(target(G, "analytics", "docs"), "PrivilegeDescribeCollection")},
        ),
        (
            GrantSpec(("ClusterReadOnly",), "*", "*"),
            {(target(G, "*", "*"), "PrivilegeGroupClusterReadOnly")},
        ),
        (
            GrantSpec(("CollectionReadOnly",), "analytics", "docs"),
            {(target(G, "analytics", "docs"), "PrivilegeGroupCollectionReadOnly")},
        ),
        (GrantSpec(("mine",), "db", "*"), {(target(G, "db", "*"), "PrivilegeGroupmine")}),
        (GrantSpec(("*",), "*", "*"), {(target(G, "*", "*"), "*")}),
    ],
    ids=["default", "two", "global-type", "cluster-group", "collection-group", "custom", "all"],
)
def test_desired_grants_follow_milvus_v2_rules(
    grant: GrantSpec, expected: set[tuple[GrantTarget, str]]
) -> None:
    assert desired_grants(spec(grant), {"mine": ("Search",)}) == expected


@pytest.mark.parametrize(
    ("role_spec", "message"),
    [
        (spec(role="admin"), "built-in role"),
        (spec(role="public"), "built-in role"),
        (spec(role="9x"), "spec.roleName: the first character"),
        (spec(GrantSpec(("Serch",))), "spec.grants[0] Serch: not found the privilege name"),
        (spec(GrantSpec(("ClusterAdmin",))), "spec.grants[0] ClusterAdmin: dbName and coll"),
        (
            spec(GrantSpec(("Search",)), GrantSpec(("DatabaseAdmin",), "db", "docs")),
            "spec.grants[1] DatabaseAdmin: collectionName should be *",
        ),
        (
            spec(GrantSpec(("CollectionReadOnly",), "*", "docs")),
            "please specify database name",
        ),
    ],
    ids=["admin", "public", "name", "unknown", "cluster-level", "database-level", "coll-level"],
)
def test_invalid_specs_name_the_bad_entry(role_spec: RoleSpec, message: str) -> None:
    with pytest.raises(InvalidRole, match=message.replace("[", r"\[").replace("*", r"\*")):
        desired_grants(role_spec, {})


def test_plan_creates_grants_and_revokes_only_the_difference() -> None:
    docs = target(C, "analytics", "docs")
    held = snapshot((docs, "PrivilegeSearch"), (docs, "PrivilegeDelete"))
    wanted = frozenset({(docs, "PrivilegeSearch"), (docs, "PrivilegeQuery")})
    plan = plan_role("reader", wanted, held)
    assert not plan.create
    assert plan.grant == ((docs, "PrivilegeQuery"),)
    assert plan.revoke == ((docs, "PrivilegeDelete"),)
    assert describe(plan.revoke[0]) == "Delete on Collection analytics.docs"


def test_plan_for_a_new_role_creates_it_and_an_equal_role_plans_nothing() -> None:
    docs = target(C, "db", "docs")
    wanted = frozenset({(docs, "PrivilegeSearch")})
    fresh = plan_role("reader", wanted, snapshot(roles=frozenset()))
    assert fresh.create
    assert fresh.grant == ((docs, "PrivilegeSearch"),)
    assert plan_role("reader", wanted, snapshot((docs, "PrivilegeSearch"))).empty


def test_other_roles_grants_are_never_planned() -> None:
    other = target(C, "db", "docs", role="writer")
    plan = plan_role("reader", frozenset(), snapshot((other, "PrivilegeInsert")))
    assert plan.empty


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (None, BindingPlan()),
        (("reader",), BindingPlan(bind=("reader",), unbind=("old",))),
        (("old", "ghost"), BindingPlan(missing=("ghost",))),
        ((), BindingPlan(unbind=("old",))),
        (("public",), BindingPlan(unbind=("old",))),
    ],
    ids=["absent-leaves-alone", "replace", "missing", "empty-unbinds-all", "public-implicit"],
)
def test_bindings_are_authoritative_only_when_set(
    roles: tuple[str, ...] | None, expected: BindingPlan
) -> None:
    held = snapshot(
        roles=frozenset({"admin", "public", "reader", "old"}),
        bindings=frozenset({("alice", "old"), ("bob", "reader")}),
    )
    assert plan_bindings("alice", roles, held) == expected


@pytest.mark.parametrize(
    ("privilege", "expected"),
    [
        ("*", True),
        ("All", True),
        ("ClusterReadOnly", True),
        ("ClusterAdmin", True),
        ("CreateOwnership", True),
        ("ManageOwnership", True),
        ("UpdateUser", True),
        ("BackupRBAC", True),
        ("RestoreRBAC", True),
        ("Admin", True),
        ("elevating_group", True),
        ("Search", False),
        ("CollectionAdmin", False),
        ("DatabaseAdmin", False),
        ("DescribeCollection", False),
        ("harmless_group", False),
    ],
)
def test_elevated_privileges_are_derived_from_the_levels(privilege: str, expected: bool) -> None:
    groups = {"elevating_group": ("Search", "DropOwnership"), "harmless_group": ("Query",)}
    assert elevated(privilege, groups) is expected


def test_role_privileges_need_elevation_or_takeover() -> None:
    plain = spec(GrantSpec(("Search",)))
    mine = Claim("team/r", Origin.CREATED)
    adopted = Claim("team/r", Origin.ADOPTED)
    assert role_privileges(plain, {}, claim=None, exists=False) == []
    assert role_privileges(plain, {}, claim=mine, exists=True) == []
    assert role_privileges(plain, {}, claim=None, exists=True) == [Privilege.ADOPT_ROLE]
    assert role_privileges(plain, {}, claim=adopted, exists=True) == [Privilege.ADOPT_ROLE]
    other = Claim("team/other", Origin.ADOPTED)
    assert role_privileges(plain, {}, claim=other, exists=True) == []  # a Conflict, not this
    wide = spec(GrantSpec(("ClusterReadOnly",), "*", "*"))
    assert role_privileges(wide, {}, claim=None, exists=False) == [Privilege.GRANT_ELEVATED]


def test_binding_privileges_follow_what_the_role_holds_in_etcd() -> None:
    held = snapshot(
        (target(G, "*", "*", role="ops"), "PrivilegeGroupClusterAdmin"),
        (target(C, "db", "*"), "PrivilegeSearch"),
        roles=frozenset({"admin", "public", "reader", "ops"}),
    )
    assert binding_privileges(None, held) == []
    assert binding_privileges(("reader", "ghost"), held) == []
    assert binding_privileges(("admin",), held) == [Privilege.BIND_ADMIN]
    assert binding_privileges(("ops",), held) == [Privilege.BIND_ELEVATED]


def test_permissions_name_the_rule_and_spare_privileged_namespaces() -> None:
    permissions = Permissions(
        frozenset({"ops"}), parse_namespace_databases("team=analytics,shared; ml=ml")
    )
    refusal = permissions.refusal("team", [Privilege.BIND_ADMIN, Privilege.BIND_ADMIN])
    assert refusal == (
        "only resources in a privileged namespace (--privileged-namespaces of the operator) "
        "may bind the admin role; namespace team is not privileged"
    )
    assert permissions.refusal("ops", [Privilege.BIND_ADMIN]) is None
    assert permissions.database_refusal("team", {"analytics"}) is None
    assert permissions.database_refusal("other", {"*"}) is None
    refused = permissions.database_refusal("team", {"analytics", "*", "ml"})
    assert refused is not None
    assert "--namespace-databases" in refused
    assert refused.endswith("not *, ml")


@pytest.mark.parametrize("text", ["team", "team=", "team=*", "=db", "a=x;a=y"])
def test_namespace_databases_refuse_bad_entries(text: str) -> None:
    with pytest.raises(ValueError, match="--namespace-databases"):
        parse_namespace_databases(text)
