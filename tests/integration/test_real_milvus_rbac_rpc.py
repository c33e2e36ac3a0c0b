"""Differential: one pymilvus script of role, grant and user calls, run against the real
Milvus 2.3.5 (its own etcd) and through a milvus-auth proxy (milvus-lite upstream, the
session's etcd), must leave the same RBAC records (grantee ids and all) and get the same
answers from `describe_role`, `describe_user` and `list_roles`.

Where 2.3 and 2.6 differ by design the test says so and holds the proxy to 2.6: granting
`Load` also grants `GetLoadState` and `GetLoadingProgress` (2.6's related privileges), and
refusals carry 2.6's texts (asserted in test_proxy_rbac.py; here both sides must refuse).
2.3 has no OperatePrivilegeV2, privilege groups or BackupRBAC, so they are not in the script.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from pymilvus import MilvusClient, MilvusException

from tests.harness.processes import EtcdServer
from tests.harness.proxy import ROOT_PASSWORD as PROXY_ROOT_PASSWORD
from tests.harness.proxy import ProxyProcess
from tests.harness.real_milvus import ROOT_PASSWORD, RealMilvus, rbac_records

pytestmark = pytest.mark.real_milvus
Script = Callable[[MilvusClient], None]


@pytest.fixture
def clients(real_milvus: RealMilvus, proxy: ProxyProcess) -> Iterator[tuple[MilvusClient, ...]]:
    """(the real Milvus, the proxy), both as root."""
    theirs = MilvusClient(uri=real_milvus.uri, token=f"root:{ROOT_PASSWORD}", timeout=10)
    ours = MilvusClient(uri=proxy.uri, token=f"root:{PROXY_ROOT_PASSWORD}", timeout=10)
    yield theirs, ours
    theirs.close()
    ours.close()


def _script(p: str) -> list[Script]:
    """The calls, on names prefixed with `p` (the real Milvus outlives one test)."""
    return [
        lambda c: c.create_role(f"{p}reader"),
        lambda c: c.create_role(f"{p}writer"),
        lambda c: c.create_user(f"{p}u1", "password1"),
        lambda c: c.create_user(f"{p}u2", "password1"),
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Search", "*"),
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Query", "c1"),
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Search", "*"),  # again
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Insert", "*", db_name="db1"),
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Load", "c2"),
        lambda c: c.grant_privilege(f"{p}writer", "Global", "CreateCollection", "anything"),
        lambda c: c.grant_privilege(f"{p}writer", "Global", "All", "*"),
        lambda c: c.grant_privilege(f"{p}writer", "User", "UpdateUser", f"{p}u1"),
        lambda c: c.grant_role(f"{p}u1", f"{p}reader"),
        lambda c: c.grant_role(f"{p}u2", f"{p}reader"),
        lambda c: c.grant_role(f"{p}u2", f"{p}writer"),
        lambda c: c.grant_role(f"{p}u2", f"{p}writer"),  # again
        lambda c: c.revoke_privilege(f"{p}reader", "Collection", "Query", "c1"),
        lambda c: c.revoke_privilege(f"{p}reader", "Collection", "Query", "c1"),  # again
        lambda c: c.revoke_role(f"{p}u2", f"{p}reader"),
        lambda c: c.revoke_role(f"{p}u2", f"{p}reader"),  # again
        lambda c: c.revoke_privilege(f"{p}writer", "Global", "CreateCollection", "*"),
        lambda c: c.revoke_privilege(f"{p}writer", "Global", "All", "*"),
        lambda c: c.revoke_privilege(f"{p}writer", "User", "UpdateUser", f"{p}u1"),
        # 2.3 has no force_drop: revoke everything, then drop (emptied grant keys stay on both).
        lambda c: c.drop_role(f"{p}writer"),
    ]


def _refusals(p: str) -> list[Script]:
    """Calls both must refuse (2.3 and 2.6 texts differ; test_proxy_rbac.py holds 2.6's)."""
    return [
        lambda c: c.create_role("1bad"),
        lambda c: c.create_role(f"{p}reader"),
        lambda c: c.drop_role("admin"),
        lambda c: c.drop_role(f"{p}ghost"),
        lambda c: c.drop_role(f"{p}reader"),  # still grants Search
        lambda c: c.grant_role(f"{p}ghost", f"{p}reader"),
        lambda c: c.grant_role(f"{p}u1", f"{p}ghost"),
        lambda c: c.grant_privilege(f"{p}ghost", "Collection", "Search", "*"),
        lambda c: c.grant_privilege(f"{p}reader", "Database", "Search", "*"),
        lambda c: c.grant_privilege(f"{p}reader", "Global", "Search", "*"),
        lambda c: c.grant_privilege(f"{p}reader", "Collection", "Nope", "*"),
    ]


def _changed(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, bytes]:
    assert set(before) <= set(after)
    return {key: value for key, value in after.items() if before.get(key) != value}


def test_same_script_same_records_same_answers(
    clients: tuple[MilvusClient, MilvusClient],
    real_milvus: RealMilvus,
    proxy: ProxyProcess,
    etcd: EtcdServer,
    meta_root: str,
    request: pytest.FixtureRequest,
) -> None:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    theirs, ours = clients
    p = f"x{uuid.uuid4().hex[:6]}_"
    request.addfinalizer(lambda: _clean_up(theirs, p))
    theirs_before = rbac_records(real_milvus.etcd.endpoint, real_milvus.meta_root)
    ours_before = rbac_records(etcd.endpoint, meta_root)
    for call in _script(p):
        call(theirs)
        call(ours)
    for call in _refusals(p):
        for client in (theirs, ours):
            with pytest.raises(MilvusException):
                call(client)

    theirs_changed = _changed(
        theirs_before, rbac_records(real_milvus.etcd.endpoint, real_milvus.meta_root)
    )
    ours_changed = _changed(ours_before, rbac_records(etcd.endpoint, meta_root))
    # 2.6 by design: Load brings GetLoadState and GetLoadingProgress under the same grantee id.
    load_id = ours_changed[f"credential/grantee-privileges/{p}reader/Collection/default.c2"]
    related = {f"credential/grantee-id/{load_id.decode()}/Privilege{name}": b"root"
               for name in ("GetLoadState", "GetLoadingProgress")}  # fmt: skip
    assert {k: v for k, v in ours_changed.items() if k not in related} == theirs_changed
    assert set(related) <= set(ours_changed)
    # What the comparison covered, so an empty or one-sided dump cannot pass.
    assert sorted(key.split("/")[1] for key in theirs_changed) == sorted(
        ["grantee-id"] * 3 + ["grantee-privileges"] * 6 + ["roles"] + ["user-role-mapping"]
        + ["users"] * 2
    )  # fmt: skip
    # Both sides start with admin and public (RootCoord's initRbac; the proxy at its start).
    assert {"roles/admin", "roles/public"} <= {k.removeprefix("credential/") for k in ours_before}

    ours_roles = ours.list_roles()
    assert [r for r in theirs.list_roles() if r.startswith(p) or r in ("admin", "public")] == (
        ours_roles
    )
    assert ours_roles == ["admin", "public", f"{p}reader"]
    for user in (f"{p}u1", f"{p}u2", f"{p}nobody"):
        assert theirs.describe_user(user) == ours.describe_user(user), user
    assert ours.describe_user(f"{p}u1")["roles"] == (f"{p}reader",)
    # A dropped role: SelectRole finds nothing, then SelectGrant refuses, on both (2.3:
    # "not found the role, ..." 65535; 2.6: 'the role "<r>" does not exist' 1100).
    for client in (theirs, ours):
        with pytest.raises(MilvusException):
            client.describe_role(f"{p}writer")
    for role in (f"{p}reader", "admin"):
        theirs_role, ours_role = theirs.describe_role(role), ours.describe_role(role)
        ours_role["privileges"] = [
            grant for grant in ours_role["privileges"]
            if grant["privilege"] not in ("GetLoadState", "GetLoadingProgress")
        ]  # fmt: skip
        assert theirs_role == ours_role, role
    # In db default: Search on `*`, Load on c2 and its two related privileges (not db1's Insert).
    assert len(ours.describe_role(f"{p}reader")["privileges"]) == 4


def _clean_up(client: MilvusClient, p: str) -> None:
    """Leave the session's real Milvus without this test's roles (at most 10 roles in all)
    and users; 2.3 has no force_drop, so the grants are revoked first."""
    for object_type, privilege, name, database in (
        ("Collection", "Search", "*", ""),
        ("Collection", "Insert", "*", "db1"),
        ("Collection", "Load", "c2", ""),
    ):
        with contextlib.suppress(MilvusException):
            client.revoke_privilege(f"{p}reader", object_type, privilege, name, db_name=database)
    for drop in (
        lambda: client.drop_role(f"{p}reader"),
        lambda: client.drop_role(f"{p}writer"),
        lambda: client.drop_user(f"{p}u1"),
        lambda: client.drop_user(f"{p}u2"),
    ):
        with contextlib.suppress(MilvusException):
            drop()
