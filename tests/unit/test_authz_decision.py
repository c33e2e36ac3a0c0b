"""The privilege decision on policies built as RootCoord builds them (Milvus 2.6 semantics)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from milvus_auth.core.grants import GrantTarget, plan_v1, plan_v2
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.core.privilege_table import METHOD_PRIVILEGES
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.proxy.authn.identity import Identity, Proof
from milvus_auth.proxy.authz.decision import Bypass, allowed, denial
from milvus_auth.proxy.authz.policy import CompiledPolicy, expanded_policies

SERVICE = "/milvus.proto.milvus.MilvusService/"


def _grant(role: str, privilege: str, **where: str) -> StoredGrant:
    planned = plan_v1(
        role,
        privilege,
        object_type=where.get("type", "Collection"),
        object_name=where.get("name", "*"),
        database=where.get("db", "default"),
        custom_groups=(),
    )
    return StoredGrant(planned.target, planned.privilege, "root")


def _grant_v2(
    role: str,
    privilege: str,
    *,
    db: str = "default",
    collection: str = "*",
    groups: dict[str, tuple[str, ...]] | None = None,
) -> StoredGrant:
    planned = plan_v2(
        role, privilege, database=db, collection=collection, custom_groups=groups or {}
    )
    return StoredGrant(planned.target, planned.privilege, "root")


def _policy(
    *grants: StoredGrant,
    bindings: tuple[tuple[str, str], ...] = (),
    groups: dict[str, tuple[str, ...]] | None = None,
) -> CompiledPolicy:
    snapshot = PolicySnapshot(
        revision=1,
        bindings=frozenset(bindings),
        grants=grants,
        groups=MappingProxyType(
            {name: PrivilegeGroup(name, members) for name, members in (groups or {}).items()}
        ),
    )
    return CompiledPolicy.from_snapshot(snapshot)


def _check(
    policy: CompiledPolicy,
    user: str,
    method: str,
    name: str = "",
    *,
    db: str = "default",
    names: tuple[str, ...] = (),
    granted_role: str | None = None,
) -> bool:
    rule = METHOD_PRIVILEGES[SERVICE + method]
    identity = Identity(user, Proof.PASSWORD, db)
    name = name if rule.object_name_index > 0 else "*"
    return allowed(policy, CompiledPolicy.permits, identity, rule, name, names, granted_role)


def test_a_collection_grant_allows_that_collection_in_that_database_only() -> None:
    policy = _policy(_grant("reader", "Search", name="books"), bindings=(("ann", "reader"),))
    assert _check(policy, "ann", "Search", "books")
    assert not _check(policy, "ann", "Search", "films")
    assert not _check(policy, "ann", "Search", "books", db="other")
    assert not _check(policy, "ann", "Query", "books")
    assert not _check(policy, "bob", "Search", "books")  # not bound


def test_wildcards_on_name_and_privilege() -> None:
    policy = _policy(
        _grant("any", "Search", name="*"),
        _grant("all", "*", name="books"),
        bindings=(("ann", "any"), ("bob", "all")),
    )
    assert _check(policy, "ann", "Search", "whatever")
    # Milvus 2.5+ re-types a stored `*` privilege as Global on `*`: it no longer matches a
    # Collection request (RootCoord's expandPrivilegeGroups), so bob gets nothing.
    assert not _check(policy, "bob", "Search", "books")


def test_public_is_implicit_and_admin_passes_everything() -> None:
    policy = _policy(
        _grant("public", "DescribeCollection", type="Global"), bindings=(("boss", "admin"),)
    )
    assert _check(policy, "nobody", "DescribeCollection")
    assert not _check(policy, "nobody", "DropCollection")
    assert _check(policy, "boss", "DropCollection", db="anything")
    assert _check(policy, "boss", "DeleteCredential")


def test_v2_levels_and_custom_groups_are_expanded_as_list_policy_does() -> None:
    groups = {"ingest": ("Insert", "Delete")}
    policy = _policy(
        _grant_v2("writer", "CollectionReadWrite", collection="*"),
        _grant_v2("dba", "DatabaseAdmin"),
        _grant_v2("feeder", "ingest", collection="books", groups=groups),
        bindings=(("w", "writer"), ("d", "dba"), ("f", "feeder")),
        groups=groups,
    )
    assert _check(policy, "w", "Insert", "any")
    assert _check(policy, "w", "CreateIndex", "any")
    assert not _check(policy, "w", "CreateCollection")
    assert _check(policy, "d", "CreateCollection")
    assert _check(policy, "d", "DropCollection")
    assert not _check(policy, "d", "Insert", "books")
    assert _check(policy, "f", "Insert", "books")
    assert _check(policy, "f", "Delete", "books")
    assert not _check(policy, "f", "Insert", "other")
    assert not _check(policy, "f", "Search", "books")


def test_v1_groups_and_privilege_all_match_at_decision_time() -> None:
    policy = _policy(
        _grant("ro", "ReadOnly", name="books"),
        _grant("everything", "All", type="Global"),
        bindings=(("r", "ro"), ("e", "everything")),
    )
    assert _check(policy, "r", "Search", "books")
    assert _check(policy, "r", "ShowPartitions", "books")
    assert not _check(policy, "r", "Search", "films")
    assert not _check(policy, "r", "Insert", "books")
    assert _check(policy, "e", "DropCollection")
    assert _check(policy, "e", "Insert", "books")
    assert _check(policy, "e", "UpdateCredential", "someone")  # PrivilegeAll covers User too
    assert not _check(policy, "e", "Insert", "books", db="other")


def test_self_and_own_role_bypasses() -> None:
    policy = _policy(bindings=(("ann", "reader"),))
    assert _check(policy, "ann", "UpdateCredential", "ann")
    assert not _check(policy, "ann", "UpdateCredential", "bob")
    assert _check(policy, "ann", "SelectUser", "ann")
    assert _check(policy, "ann", "SelectGrant", granted_role="reader")
    assert _check(policy, "ann", "SelectGrant", granted_role="public")
    assert not _check(policy, "ann", "SelectGrant", granted_role="admin")


def test_every_name_of_a_list_must_pass_and_an_empty_list_never_does() -> None:
    policy = _policy(_grant("f", "Flush", name="books"), bindings=(("ann", "f"), ("boss", "admin")))
    assert _check(policy, "ann", "Flush", names=("books",))
    assert not _check(policy, "ann", "Flush", names=("books", "films"))
    assert not _check(policy, "ann", "Flush", names=())
    assert not _check(policy, "boss", "Flush", names=())  # Enforce is never called


def test_root_and_super_users_bypass_as_configured() -> None:
    root = Identity("root", Proof.PASSWORD)
    helper = Identity("helper", Proof.PASSWORD)
    assert Bypass().passes(root, user_management=False)
    assert not Bypass(root_should_bind_role=True).passes(root, user_management=False)
    supers = Bypass(super_users=frozenset({"helper"}))
    assert supers.passes(helper, user_management=True)
    assert not supers.passes(helper, user_management=False)


def test_denial_text_is_milvus_26s() -> None:
    rule = METHOD_PRIVILEGES[SERVICE + "Search"]
    text = denial(Identity("ann", Proof.PASSWORD, "db1"), rule)
    assert text == "PrivilegeSearch: permission deny to ann in the `db1` database"


def test_policy_rows_are_rootcoords_json() -> None:
    target = GrantTarget("r", ObjectType.COLLECTION, "default", "books")
    rows = expanded_policies(
        PolicySnapshot(revision=1, grants=(StoredGrant(target, "PrivilegeSearch", "root"),))
    )
    assert rows == {'{"PType":"p","V0":"r","V1":"Collection-default.books","V2":"PrivilegeSearch"}'}


@pytest.mark.parametrize("name", ["books/x", "books*"])
def test_glob_specials_in_request_names_do_not_widen(name: str) -> None:
    policy = _policy(_grant("any", "Search", name="*"), bindings=(("ann", "any"),))
    assert _check(policy, "ann", "Search", name) is ("/" not in name)
