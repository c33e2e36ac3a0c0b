"""Milvus's RBAC RPCs served by a real proxy process, on real etcd, pymilvus as the client.

Every pymilvus role, grant and privilege-group API works through the proxy (the upstream is
milvus-lite, which has no RBAC at all, so every answer here is the proxy's), the records land
in etcd as a stock RootCoord writes them, and bad input gets Milvus 2.6's codes and texts.
BackupRBAC/RestoreRBAC have no pymilvus API: they are called with pymilvus's generated stub.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2, milvus_pb2_grpc

from milvus_auth.core.grants import RbacLayout
from milvus_auth.store import EtcdSettings, PolicyStore
from tests.harness.proxy import ROOT_PASSWORD, ProxyProcess

Login = Callable[..., MilvusClient]


@pytest.fixture
def root(proxy: ProxyProcess) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=proxy.uri, user="root", password=ROOT_PASSWORD, timeout=10)
    yield client
    client.close()


def _refused(call: Callable[[], object]) -> MilvusException:
    with pytest.raises(MilvusException) as refused:
        call()
    return refused.value


def _records(etcd_settings: EtcdSettings, meta_root: str) -> dict[str, bytes]:
    """Every RBAC key under the meta root (relative to `<meta_root>/root-coord/`)."""

    async def read() -> dict[str, bytes]:
        async with PolicyStore(etcd_settings, RbacLayout(meta_root)) as store:
            prefix = f"{meta_root}/root-coord/"
            found = await store.connection.call(lambda c: c.get_prefix(prefix.encode()))
        return {
            kv.key.decode()[len(prefix) :]: bytes(kv.value)
            for kv in found
            if not kv.key.decode()[len(prefix) :].startswith("credential/users/")
        }

    return asyncio.run(read())


def test_roles_and_bindings_through_pymilvus(
    root: MilvusClient, etcd_settings: EtcdSettings, meta_root: str
) -> None:
    root.create_user("alice", "AlicePass1")
    root.create_role("reader")
    root.create_role("writer")
    # admin and public exist from the start, as RootCoord's initRbac makes them.
    assert root.list_roles() == ["admin", "public", "reader", "writer"]
    root.grant_role("alice", "reader")
    root.grant_role("alice", "reader")  # idempotent, as in Milvus
    root.grant_role("alice", "writer")
    assert root.describe_user("alice")["roles"] == ("reader", "writer")
    assert root.describe_role("reader") == {"role": "reader", "description": "", "privileges": []}
    root.revoke_role("alice", "writer")
    root.revoke_role("alice", "writer")  # idempotent
    assert root.describe_user("alice")["roles"] == ("reader",)
    assert root.describe_user("nobody") == {}
    root.drop_role("writer")
    assert root.list_roles() == ["admin", "public", "reader"]
    assert sorted(root.list_users()) == ["alice", "root"]
    assert _records(etcd_settings, meta_root) == {
        "credential/roles/admin": b"",
        "credential/roles/public": b"",
        "credential/roles/reader": b"",
        "credential/user-role-mapping/alice/reader": b"",
    }


def test_grants_v1_v2_and_describe_role(
    root: MilvusClient, etcd_settings: EtcdSettings, meta_root: str
) -> None:
    root.create_role("r1")
    root.grant_privilege("r1", "Collection", "Search", "c1", db_name="db1")
    root.grant_privilege("r1", "Global", "CreateCollection", "ignored")  # Global ⇒ `*`
    root.grant_privilege("r1", "Collection", "Load", "*")  # 2.6: + GetLoadState, GetLoadingProgress
    root.grant_privilege_v2("r1", "CollectionReadOnly", "c2", db_name="db2")
    root.grant_privilege_v2("r1", "ClusterAdmin", "*", db_name="*")
    privileges = root.describe_role("r1", db_name="*")["privileges"]
    got = {(p["object_type"], p["db_name"], p["object_name"], p["privilege"]) for p in privileges}
    assert got == {
        ("Collection", "db1", "c1", "Search"),
        ("Global", "default", "*", "CreateCollection"),
        ("Collection", "default", "*", "Load"),
        ("Collection", "default", "*", "GetLoadState"),
        ("Collection", "default", "*", "GetLoadingProgress"),
        ("Global", "db2", "c2", "CollectionReadOnly"),
        ("Global", "*", "*", "ClusterAdmin"),
    }
    assert {p["grantor_name"] for p in privileges} == {"root"}
    # Without db_name only the default database's (and db `*`'s) grants are listed.
    in_default = {p["privilege"] for p in root.describe_role("r1")["privileges"]}
    assert in_default == {
        "CreateCollection", "Load", "GetLoadState", "GetLoadingProgress", "ClusterAdmin",
    }  # fmt: skip
    records = _records(etcd_settings, meta_root)
    grant_key = "credential/grantee-privileges/r1/Collection/db1.c1"
    layout = RbacLayout(meta_root)
    assert (
        records[grant_key]
        == layout.grantee_id_for(
            layout.parse_grant_key(f"{meta_root}/root-coord/{grant_key}")
        ).encode()
    )
    assert (
        records[f"credential/grantee-id/{records[grant_key].decode()}/PrivilegeSearch"] == b"root"
    )

    root.revoke_privilege("r1", "Collection", "Search", "c1", db_name="db1")
    root.revoke_privilege_v2("r1", "CollectionReadOnly", "c2", db_name="db2")
    root.revoke_privilege_v2("r1", "ClusterAdmin", "*", db_name="*")
    left = {p["privilege"] for p in root.describe_role("r1", db_name="*")["privileges"]}
    assert left == {"CreateCollection", "Load", "GetLoadState", "GetLoadingProgress"}
    refused = _refused(lambda: root.drop_role("r1"))
    assert refused.code == 65535
    assert refused.message == (
        "fail to drop the role that it has privileges. Use REVOKE API to revoke privileges"
    )
    root.drop_role("r1", force_drop=True)
    assert root.list_roles() == ["admin", "public"]
    assert set(_records(etcd_settings, meta_root)) == {
        "credential/roles/admin", "credential/roles/public",
    }  # fmt: skip


def test_privilege_groups_through_pymilvus(root: MilvusClient) -> None:
    root.create_privilege_group("readers")
    root.add_privileges_to_group("readers", ["Search", "Query"])
    root.add_privileges_to_group("readers", ["Query", "IndexDetail"])
    groups = root.list_privilege_groups()
    assert groups[0] == {
        "privilege_group": "readers", "privileges": ("Search", "Query", "IndexDetail"),
    }  # fmt: skip
    assert [g["privilege_group"] for g in groups[1:]] == [
        "ClusterReadOnly", "ClusterReadWrite", "ClusterAdmin", "DatabaseReadOnly",
        "DatabaseReadWrite", "DatabaseAdmin", "CollectionReadOnly", "CollectionReadWrite",
        "CollectionAdmin",
    ]  # fmt: skip
    root.remove_privileges_from_group("readers", ["Query"])
    assert root.list_privilege_groups()[0]["privileges"] == ("Search", "IndexDetail")
    mixed = _refused(lambda: root.add_privileges_to_group("readers", ["CreateDatabase"]))
    assert (mixed.code, mixed.message) == (
        1100,
        "failed to check if privilege group alterable: privileges are not the same privilege "
        "level: invalid parameter",
    )
    root.create_role("g")
    root.grant_privilege_v2("g", "readers", "c1", db_name="default")
    in_use = _refused(lambda: root.drop_privilege_group("readers"))
    assert in_use.message == (
        "failed to check if privilege group dropable: privilege group [readers] is used by "
        "role [g], Use REVOKE API to revoke it first"
    )
    v1 = _refused(lambda: root.grant_privilege("g", "Global", "readers", "*"))
    assert (v1.code, v1.message) == (
        1100, "can not operate the custom privilege group [readers]: invalid parameter",
    )  # fmt: skip
    root.revoke_privilege_v2("g", "readers", "c1", db_name="default")
    root.drop_privilege_group("readers")
    root.drop_privilege_group("readers")  # absent: success, as in Milvus
    assert root.list_privilege_groups()[0]["privilege_group"] == "ClusterReadOnly"
    builtin = _refused(lambda: root.create_privilege_group("Search"))
    assert builtin.message == (
        "failed to check if privilege group creatable: privilege group name [Search] is "
        "defined by built in privileges or privilege groups in system: invalid parameter"
    )


# (call, code, reason) — Milvus 2.6's texts (authz-spec §3).
_BAD_INPUT: list[tuple[Callable[[MilvusClient], object], int, str]] = [
    (lambda c: c.create_role("1bad"), 1100,
     "the first character of role name must be an underscore or letter: "
     "invalid parameter[expected=95][actual=49]"),
    (lambda c: c.create_role("a-b"), 1100,
     "role name can only contain numbers, letters, dollars and underscores, found - at 1: "
     "invalid parameter"),
    (lambda c: c.create_role("r_x"), 1100, 'role [name:"r_x"] already exists: invalid parameter'),
    (lambda c: c.create_role("admin"), 1100,
     'role [name:"admin"] already exists: invalid parameter'),
    (lambda c: c.drop_role("admin"), 1401,
     "the role[admin] is a default role, which can't be dropped: privilege not permitted"),
    (lambda c: c.drop_role("ghost"), 1100,
     "not found the role, maybe the role isn't existed or internal system error: "
     "invalid parameter"),
    (lambda c: c.grant_role("ghost", "r_x"), 65535,
     "not found the user, maybe the user isn't existed or internal system error"),
    (lambda c: c.grant_privilege("ghost", "Collection", "Search", "*"), 1100,
     'failed to operate privilege common check: the role "ghost" does not exist: '
     "invalid parameter"),
    (lambda c: c.grant_privilege("r_x", "Database", "Search", "*"), 1100,
     "failed to operate privilege common check: the object entity in the request is nil or "
     "invalid: invalid parameter"),
    (lambda c: c.grant_privilege("r_x", "Global", "Search", "*"), 1100,
     "not found the privilege name[Search] in object[Global]: invalid parameter"),
    (lambda c: c.grant_privilege("r_x", "Collection", "CollectionAdmin", "*"), 1100,
     "can not operate the built-in privilege group [CollectionAdmin]: invalid parameter"),
    (lambda c: c.grant_privilege_v2("r_x", "Nope", "*", db_name="*"), 1100,
     "not found the privilege name[Nope]: invalid parameter"),
    (lambda c: c.grant_privilege_v2("r_x", "ClusterReadOnly", "c1", db_name="default"), 1100,
     "dbName and collectionName should be * for the cluster level privilege: "
     "ClusterReadOnly: invalid parameter"),
    (lambda c: c.create_privilege_group("9g"), 1402,
     "the first character of a privilege group name 9g must be an underscore or letter: "
     "invalid privilege group name"),
    (lambda c: c.add_privileges_to_group("ghost", ["Search"]), 1100,
     "failed to check if privilege group alterable: there is no privilege group name [ghost] "
     "defined in system to operate: invalid parameter"),
]  # fmt: skip


def test_bad_input_gets_milvus_codes_and_texts(root: MilvusClient) -> None:
    root.create_role("r_x")
    root.grant_privilege("r_x", "Collection", "Search", "*")
    answered = []
    for call, code, reason in _BAD_INPUT:
        refused = _refused(lambda call=call: call(root))  # type: ignore[misc]
        assert (refused.code, refused.message) == (code, reason)
        answered.append(refused.code)
    assert len(answered) == len(_BAD_INPUT)


def _stub_call(proxy: ProxyProcess, method: str, request: object) -> object:
    token = base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
    with grpc.insecure_channel(proxy.address) as channel:
        stub = milvus_pb2_grpc.MilvusServiceStub(channel)
        return getattr(stub, method)(request, metadata=[("authorization", token)], timeout=10)


def test_backup_and_restore_rbac(root: MilvusClient, proxy: ProxyProcess) -> None:
    root.create_user("bob", "BobPass123")
    root.create_role("ops")
    root.grant_role("bob", "ops")
    root.grant_privilege("ops", "Collection", "Insert", "c1")
    root.create_privilege_group("pg")
    root.add_privileges_to_group("pg", ["Query"])
    backup = _stub_call(proxy, "BackupRBAC", milvus_pb2.BackupRBACMetaRequest())
    meta = backup.RBAC_meta  # type: ignore[attr-defined]
    assert [u.user for u in meta.users] == ["bob"]  # root is never in a backup
    assert meta.users[0].password.startswith("$2")  # the stored hash, as Milvus backs it up
    assert [r.name for r in meta.users[0].roles] == ["ops"]
    assert [r.name for r in meta.roles] == ["ops"]
    assert [(g.object_name, g.grantor.privilege.name) for g in meta.grants] == [("c1", "Insert")]
    assert [g.group_name for g in meta.privilege_groups] == ["pg"]
    assert meta.users[0].password not in proxy.log()

    again = _stub_call(proxy, "RestoreRBAC", milvus_pb2.RestoreRBACMetaRequest(RBAC_meta=meta))
    assert (again.code, again.reason) == (  # type: ignore[attr-defined]
        65535, "failed to check if rbac restorable: role [ops] already exists",
    )  # fmt: skip
    root.drop_user("bob")
    root.drop_role("ops", force_drop=True)
    root.drop_privilege_group("pg")
    done = _stub_call(proxy, "RestoreRBAC", milvus_pb2.RestoreRBACMetaRequest(RBAC_meta=meta))
    assert done.code == 0  # type: ignore[attr-defined]
    assert root.describe_user("bob")["roles"] == ("ops",)
    bob = MilvusClient(uri=proxy.uri, user="bob", password="BobPass123", timeout=10)
    try:
        assert isinstance(bob.list_collections(), list)  # the restored hash logs bob in
    finally:
        bob.close()
    assert root.list_privilege_groups()[0] == {"privilege_group": "pg", "privileges": ("Query",)}


def test_statuses_carry_milvus_legacy_codes(root: MilvusClient, proxy: ProxyProcess) -> None:
    root.create_role("dup")
    duplicate = _stub_call(proxy, "CreateRole", milvus_pb2.CreateRoleRequest(
        entity=milvus_pb2.RoleEntity(name="dup")
    ))  # fmt: skip
    # RootCoord's refusal: the RPC's legacy failure code, the full text, no detail.
    assert (duplicate.error_code, duplicate.code, duplicate.detail) == (35, 1100, "")  # type: ignore[attr-defined]
    default = _stub_call(proxy, "DropRole", milvus_pb2.DropRoleRequest(role_name="public"))
    # The proxy's refusal (merr.Status): legacy code from the merr code, detail = the text.
    assert (default.error_code, default.code) == (1, 1401)  # type: ignore[attr-defined]
    assert default.detail == default.reason  # type: ignore[attr-defined]
    bad = _stub_call(proxy, "SelectRole", milvus_pb2.SelectRoleRequest(
        role=milvus_pb2.RoleEntity(name="")
    ))  # fmt: skip
    assert (bad.status.error_code, bad.status.code) == (5, 1100)  # type: ignore[attr-defined]
    assert bad.status.reason == (  # type: ignore[attr-defined]
        "role name should be not empty: invalid parameter[expected=not empty][actual=]"
    )


def test_at_most_ten_roles_counting_admin_and_public(root: MilvusClient) -> None:
    for index in range(8):
        root.create_role(f"role{index}")
    limit = _refused(lambda: root.create_role("one_more"))
    assert (limit.code, limit.message) == (
        65535, "unable to create role because the number of roles has reached the limit",
    )  # fmt: skip
    assert len(root.list_roles()) == 10
