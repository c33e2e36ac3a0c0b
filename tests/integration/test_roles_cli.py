"""`milvus-auth roles` as a subprocess against a real etcd."""

from __future__ import annotations

import subprocess

import pytest

from milvus_auth.core import CredentialRecord
from milvus_auth.core.grants import RbacLayout
from milvus_auth.core.groups import PrivilegeGroup
from milvus_auth.store import CredentialStore, EtcdSettings, PolicyStore
from tests.harness.cli import run_cli
from tests.harness.processes import EtcdServer, free_port

HASH = "$2a$04$" + "a" * 53


def run(args: list[str], *, etcd: str, meta_root: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["roles", *args], etcd=etcd, meta_root=meta_root)


@pytest.fixture
def cli(etcd: EtcdServer, meta_root: str):  # type: ignore[no-untyped-def]
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run(list(args), etcd=etcd.endpoint, meta_root=meta_root)

    return call


async def _dump(settings: EtcdSettings, meta_root: str) -> dict[str, bytes]:
    async with PolicyStore(settings, RbacLayout(meta_root)) as policy:
        root = f"{meta_root}/root-coord/"
        found = await policy.connection.call(lambda c: c.get_prefix(root.encode()))
        return {kv.key.decode()[len(root) :]: kv.value for kv in found if b"/users/" not in kv.key}


async def test_a_role_from_create_to_delete(  # type: ignore[no-untyped-def]
    cli, store: CredentialStore, etcd_settings: EtcdSettings, meta_root: str
) -> None:
    await store.create(CredentialRecord("alice", HASH))
    assert cli("create", "reader").returncode == 0
    granted = cli("grant", "reader", "Search", "--object-type", "Collection")
    assert granted.returncode == 0, granted.stderr
    assert "granted: reader Collection default.* PrivilegeSearch" in granted.stdout
    assert (
        cli(
            "grant",
            "reader",
            "Query",
            "--object-type",
            "Collection",
            "--object-name",
            "c1",
            "--database",
            "db1",
        ).returncode
        == 0
    )
    # v1 Global grants are always on `*`, whatever name was given (as RootCoord does).
    assert (
        cli(
            "grant", "reader", "CreateCollection", "--object-type", "Global", "--object-name", "c9"
        ).returncode
        == 0
    )
    assert cli("bind", "reader", "alice").returncode == 0
    dump = await _dump(etcd_settings, meta_root)
    assert dump["credential/roles/reader"] == b""
    assert dump["credential/user-role-mapping/alice/reader"] == b""
    assert dump["credential/grantee-privileges/reader/Collection/default.*"] == b"06a8a0982cd65dd1"
    assert dump["credential/grantee-id/06a8a0982cd65dd1/PrivilegeSearch"] == b"root"
    assert "credential/grantee-privileges/reader/Global/default.*" in dump
    assert "credential/grantee-privileges/reader/Collection/db1.c1" in dump

    got = cli("get", "reader")
    assert got.returncode == 0
    assert got.stdout.splitlines() == [
        "role: reader",
        "users: alice",
        "grant: Collection db1.c1 Query (grantor root)",
        "grant: Collection default.* Search (grantor root)",
        "grant: Global default.* CreateCollection (grantor root)",
    ]
    assert cli("list").stdout.split() == ["reader"]

    refused = cli("delete", "reader")
    assert refused.returncode == 1
    assert "fail to drop the role that it has privileges" in refused.stderr
    revoked = cli("revoke", "reader", "Search", "--object-type", "Collection")
    assert revoked.returncode == 0
    assert "revoked" in revoked.stdout
    assert cli("unbind", "reader", "alice").returncode == 0
    assert cli("delete", "reader", "--force").returncode == 0
    assert await _dump(etcd_settings, meta_root) == {}


async def test_v2_grants_of_groups(cli, etcd_settings: EtcdSettings, meta_root: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("create", "ops").returncode == 0
    assert cli("grant", "ops", "ClusterReadOnly", "--database", "*").returncode == 0
    assert cli("grant", "ops", "DatabaseAdmin", "--database", "db1").returncode == 0
    assert (
        cli(
            "grant", "ops", "CollectionReadWrite", "--database", "db1", "--object-name", "c1"
        ).returncode
        == 0
    )
    async with PolicyStore(etcd_settings, RbacLayout(meta_root)) as policy:
        await policy.create_group("mine")
        found = await policy.get_group("mine")
        assert found is not None
        await policy.update_group(PrivilegeGroup("mine", ("Search",)), expected_revision=found[1])
    assert cli("grant", "ops", "mine", "--database", "db1", "--object-name", "c2").returncode == 0
    got = cli("get", "ops").stdout.splitlines()
    assert got[2:] == [
        "grant: Global *.* ClusterReadOnly (grantor root)",
        "grant: Global db1.* DatabaseAdmin (grantor root)",
        "grant: Global db1.c1 CollectionReadWrite (grantor root)",
        "grant: Global db1.c2 mine (grantor root)",
    ]
    dump = await _dump(etcd_settings, meta_root)
    assert any(key.endswith("/PrivilegeGroupmine") for key in dump)
    assert any(key.endswith("/PrivilegeGroupClusterReadOnly") for key in dump)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "1bad"], "the first character of role name must be an underscore or letter: invalid parameter[expected=95][actual=49]"),
        (["delete", "admin"], "the role[admin] is a default role, which can't be dropped: privilege not permitted"),
        (["grant", "public", "Search", "--object-type", "Collection"], "the role[public] is a default role"),
        (["bind", "admin", "bob"], "the role[admin] is a default role"),
        (["bind", "ops", "root"], "the roles of root are not managed by milvus-auth"),
        (["delete", "ghost"], "not found the role, maybe the role isn't existed or internal system error"),
        (["get", "ghost"], "not found the role"),
        (["grant", "ops", "Search", "--object-type", "Global"], "not found the privilege name[Search] in object[Global]"),
        (["grant", "ops", "ClusterAdmin", "--object-type", "Global"], "can not operate the built-in privilege group [ClusterAdmin]"),
        (["grant", "ops", "ClusterAdmin", "--database", "db1"], "dbName and collectionName should be * for the cluster level privilege: ClusterAdmin: invalid parameter"),
        (["grant", "ops", "Nope"], "not found the privilege name[Nope]"),
        (["grant", "ops", "Search", "--object-name", "a-b"], "object name can only contain numbers, letters, dollars and underscores, found - at 1: invalid parameter"),
        (["bind", "ops", "ghost"], "not found the user, maybe the user isn't existed or internal system error"),
    ],
)  # fmt: skip
def test_refusals_exit_1_with_milvus_text(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("create", "ops").returncode == 0
    result = cli(*args)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr


def test_create_existing_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("create", "ops").returncode == 0
    again = cli("create", "ops")
    assert again.returncode == 1
    assert 'role [name:"ops"] already exists' in again.stderr


def test_etcd_unavailable_exits_2(meta_root: str) -> None:
    result = run(["list"], etcd=f"127.0.0.1:{free_port()}", meta_root=meta_root)
    assert result.returncode == 2
    assert "is unavailable" in result.stderr
