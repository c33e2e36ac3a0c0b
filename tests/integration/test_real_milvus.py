"""The real Milvus 2.3.5 as the oracle for milvus-auth's RBAC records.

1. Differential: one script of role, grant and user operations, run through pymilvus against
   the real Milvus and through `milvus-auth users|roles` against another meta root on the same
   etcd, must leave the same keys and values (grantee ids and all) once the prefix is rewritten.
2. Enforcement: roles, grants, bindings and users written by milvus-auth into the real Milvus's
   own meta root are enforced by it, after `RefreshPolicyInfoCache{opType: 7}` reaches its
   internal port (the 2.3 proxy caches policy and reads etcd only when told).

3. API keys: a colon-less token milvus-auth does not know is refused with the code and text
   the real Milvus gives every colon-less token (it has no key store).

Where 2.3 and 2.6 differ by design, the comments say so; what is compared is what both write.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.cli import main
from milvus_auth.core.grants import RbacLayout
from milvus_auth.store import Endpoint, EtcdSettings, PolicyStore
from tests.harness.proxy import ProxyFactory
from tests.harness.real_milvus import ROOT_PASSWORD, RealMilvus, rbac_records

pytestmark = pytest.mark.real_milvus
API_KEY_REFUSAL = "auth check failure, please check api key is correct"


@pytest.fixture
def root_client(real_milvus: RealMilvus) -> Iterator[MilvusClient]:
    client = MilvusClient(uri=real_milvus.uri, token=f"root:{ROOT_PASSWORD}")
    yield client
    client.close()


@pytest.fixture
def ours(real_milvus: RealMilvus, tmp_path: Path) -> Callable[..., None]:
    """Run `milvus-auth <args>` in process against a meta root of its own, or fail."""
    meta_root = f"ours-{uuid.uuid4().hex[:8]}/meta"
    password = tmp_path / "password"
    password.write_text("password1")

    def run(*args: str, meta: str = meta_root) -> None:
        common = ["--etcd-endpoints", real_milvus.etcd.endpoint, "--meta-root", meta]
        extra = (
            ["--password-file", str(password), "--bcrypt-cost", "4"] if args[0] == "users" else []
        )
        assert main([*args, *common, *extra]) == 0, args

    run.meta_root = meta_root  # type: ignore[attr-defined]
    return run


def test_same_script_leaves_the_same_records(
    real_milvus: RealMilvus, root_client: MilvusClient, ours: Callable[..., None]
) -> None:
    theirs_before = rbac_records(real_milvus.etcd.endpoint, real_milvus.meta_root)
    c = root_client
    script: list[tuple[Callable[[], object], tuple[str, ...]]] = [
        (lambda: c.create_role("d_reader"), ("roles", "create", "d_reader")),
        (lambda: c.create_role("d_writer"), ("roles", "create", "d_writer")),
        (lambda: c.create_user("d_u1", "password1"), ("users", "create", "d_u1")),
        (lambda: c.create_user("d_u2", "password1"), ("users", "create", "d_u2")),
        # Collection Search on `*` and Query on one collection, in the default database.
        (lambda: c.grant_privilege("d_reader", "Collection", "Search", "*"),
         ("roles", "grant", "d_reader", "Search", "--object-type", "Collection")),
        (lambda: c.grant_privilege("d_reader", "Collection", "Query", "c1"),
         ("roles", "grant", "d_reader", "Query", "--object-type", "Collection", "--object-name", "c1")),
        # Granting twice changes nothing, on either side.
        (lambda: c.grant_privilege("d_reader", "Collection", "Search", "*"),
         ("roles", "grant", "d_reader", "Search", "--object-type", "Collection")),
        (lambda: c.grant_privilege("d_reader", "Collection", "Insert", "*", db_name="db1"),
         ("roles", "grant", "d_reader", "Insert", "--object-type", "Collection", "--database", "db1")),
        # Global grants: the object name is forced to `*`.
        (lambda: c.grant_privilege("d_writer", "Global", "CreateCollection", "anything"),
         ("roles", "grant", "d_writer", "CreateCollection", "--object-type", "Global", "--object-name", "anything")),
        (lambda: c.grant_privilege("d_writer", "Global", "All", "*"),
         ("roles", "grant", "d_writer", "All", "--object-type", "Global")),
        (lambda: c.grant_privilege("d_writer", "User", "UpdateUser", "d_u1"),
         ("roles", "grant", "d_writer", "UpdateUser", "--object-type", "User", "--object-name", "d_u1")),
        (lambda: c.grant_role("d_u1", "d_reader"), ("roles", "bind", "d_reader", "d_u1")),
        (lambda: c.grant_role("d_u2", "d_reader"), ("roles", "bind", "d_reader", "d_u2")),
        (lambda: c.grant_role("d_u2", "d_writer"), ("roles", "bind", "d_writer", "d_u2")),
        # Revoke deletes only the grantee-id leaf; the grant key and its id stay.
        (lambda: c.revoke_privilege("d_reader", "Collection", "Query", "c1"),
         ("roles", "revoke", "d_reader", "Query", "--object-type", "Collection", "--object-name", "c1")),
        (lambda: c.revoke_role("d_u2", "d_reader"), ("roles", "unbind", "d_reader", "d_u2")),
        # 2.3 has no force_drop (2.6 has): revoke everything, then drop. Without force, 2.3 and
        # 2.6 alike leave the role's emptied grant keys behind (DropGrant runs only on force).
        (lambda: c.revoke_privilege("d_writer", "Global", "CreateCollection", "*"),
         ("roles", "revoke", "d_writer", "CreateCollection", "--object-type", "Global")),
        (lambda: c.revoke_privilege("d_writer", "Global", "All", "*"),
         ("roles", "revoke", "d_writer", "All", "--object-type", "Global")),
        (lambda: c.revoke_privilege("d_writer", "User", "UpdateUser", "d_u1"),
         ("roles", "revoke", "d_writer", "UpdateUser", "--object-type", "User", "--object-name", "d_u1")),
        (lambda: c.drop_role("d_writer"), ("roles", "delete", "d_writer")),
    ]  # fmt: skip
    for theirs, our_args in script:
        theirs()
        ours(*our_args)

    theirs_after = rbac_records(real_milvus.etcd.endpoint, real_milvus.meta_root)
    assert set(theirs_before) <= set(theirs_after)
    theirs_changed = {k: v for k, v in theirs_after.items() if theirs_before.get(k) != v}
    ours_after = rbac_records(real_milvus.etcd.endpoint, ours.meta_root)  # type: ignore[attr-defined]
    # Milvus's own records (roles admin/public, public's default grants, root's credential)
    # exist before the script; milvus-auth never writes them (by design: it leaves admin,
    # public and root to Milvus), so only what the script changed is compared.
    assert theirs_changed == ours_after
    # What the comparison covered (so an empty or one-sided dump cannot pass).
    assert ours_after["credential/grantee-privileges/d_reader/Collection/default.*"] == (
        b"26c1392416adeb46"
    )
    assert sorted(k.split("/")[1] for k in ours_after) == sorted(
        ["grantee-id"] * 2 + ["grantee-privileges"] * 5 + ["roles"] + ["user-role-mapping"]
        + ["users"] * 2
    )  # fmt: skip
    assert json.loads(ours_after["credential/users/d_u1"]) == {"encrypted_password": "<bcrypt>"}
    # Records Milvus wrote before, e.g. public's default grants (2.3: Global DescribeCollection
    # and ShowCollections, Collection IndexDetail on db `*`; 2.6 grants them only with
    # proxy.enablePublicPrivilege and adds ListAliases).
    assert theirs_before["credential/grantee-privileges/public/Global/*.*"] == b"250dd41b686083b0"


def _denied(call: Callable[[], object]) -> str:
    """The details of the PERMISSION_DENIED the call must end with (2.3 omits 2.6's trailing
    " in the `<db>` database")."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    return str(caught.value.details())  # type: ignore[attr-defined]


def test_records_written_by_milvus_auth_are_enforced(
    real_milvus: RealMilvus, root_client: MilvusClient, ours: Callable[..., None]
) -> None:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    collection = f"enf_{uuid.uuid4().hex[:6]}"
    root_client.create_collection(collection, dimension=2)
    root_client.insert(collection, [{"id": 1, "vector": [0.1, 0.2]}])
    meta = real_milvus.meta_root
    ours("users", "create", "eve", meta=meta)
    ours("roles", "create", "e_reader", meta=meta)
    ours("roles", "grant", "e_reader", "Query", "--object-type", "Collection",
         "--object-name", collection, meta=meta)  # fmt: skip
    ours("roles", "bind", "e_reader", "eve", meta=meta)
    eve = MilvusClient(uri=real_milvus.uri, token="eve:password1")
    try:
        query = lambda: eve.query(  # noqa: E731
            collection, filter="id >= 0", output_fields=["id"], consistency_level="Strong"
        )
        # The 2.3 proxy caches policy: an etcd write alone changes nothing there.
        assert "PrivilegeQuery: permission deny to eve" in _denied(query)
        real_milvus.refresh_policy_cache()
        assert query() == [{"id": 1}]
        insert = lambda: eve.insert(collection, [{"id": 2, "vector": [0.3, 0.4]}])  # noqa: E731
        assert "PrivilegeInsert: permission deny to eve" in _denied(insert)

        ours("roles", "revoke", "e_reader", "Query", "--object-type", "Collection",
             "--object-name", collection, meta=meta)  # fmt: skip
        real_milvus.refresh_policy_cache()
        assert "PrivilegeQuery: permission deny to eve" in _denied(query)
    finally:
        eve.close()
        root_client.drop_collection(collection)


# (what pymilvus asks the real Milvus, what milvus-auth is asked, how the texts compare):
# "same" = identical; "2.6" = milvus-auth follows 2.6, whose text extends 2.3's; "unordered" =
# identical but for the order of the trailing `[...]` list (Milvus prints a Go map's keys).
_REFUSALS: list[tuple[Callable[[MilvusClient], object], tuple[str, ...], str]] = [
    (lambda c: c.create_role("1bad"), ("create", "1bad"), "same"),
    (lambda c: c.create_role("a-b"), ("create", "a-b"), "same"),
    (lambda c: c.create_role("r_x"), ("create", "r_x"), "same"),  # exists already
    (lambda c: c.drop_role("ghost"), ("delete", "ghost"), "same"),
    (lambda c: c.drop_role("admin"), ("delete", "admin"), "same"),
    (lambda c: c.drop_role("r_x"), ("delete", "r_x"), "same"),  # still grants Search
    (lambda c: c.grant_privilege("ghost", "Collection", "Search", "*"),
     ("grant", "ghost", "Search", "--object-type", "Collection"), "same"),
    (lambda c: c.grant_privilege("r_x", "Database", "Search", "*"),
     ("grant", "r_x", "Search", "--object-type", "Database"), "unordered"),
    (lambda c: c.grant_privilege("r_x", "Global", "Search", "*"),
     ("grant", "r_x", "Search", "--object-type", "Global"), "2.6"),
    (lambda c: c.grant_privilege("r_x", "Collection", "Nope", "*"),
     ("grant", "r_x", "Nope", "--object-type", "Collection"), "2.6"),
    (lambda c: c.grant_role("ghost", "r_x"), ("bind", "r_x", "ghost"), "same"),
    (lambda c: c.grant_role("root", "ghost"), ("bind", "ghost", "d_nobody"), "same"),
]  # fmt: skip


def test_same_refusals_with_the_same_texts(
    real_milvus: RealMilvus,
    root_client: MilvusClient,
    ours: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    meta = ours.meta_root  # type: ignore[attr-defined]
    root_client.create_role("r_x")
    root_client.grant_privilege("r_x", "Collection", "Search", "*")
    ours("roles", "create", "r_x")
    ours("roles", "grant", "r_x", "Search", "--object-type", "Collection")
    capsys.readouterr()
    compared = []
    for theirs, our_args, relation in _REFUSALS:
        with pytest.raises(MilvusException) as caught:
            theirs(root_client)
        common = ["--etcd-endpoints", real_milvus.etcd.endpoint, "--meta-root", meta]
        assert main(["roles", *our_args, *common]) == 1, our_args
        our_text = capsys.readouterr().err.strip().removeprefix("milvus-auth: ")
        their_text = str(caught.value.message)
        if relation == "same":
            assert our_text == their_text, our_args
        elif relation == "unordered":
            ours_head, _, ours_list = our_text.rpartition("[")
            their_head, _, their_list = their_text.rpartition("[")
            assert ours_head == their_head, our_args
            assert sorted(ours_list.rstrip("]").split()) == sorted(
                their_list.rstrip("]").split()
            ), our_args
        else:
            assert our_text.startswith(their_text), our_args
        compared.append(our_text)
    assert len(compared) == len(_REFUSALS)


def test_records_written_by_milvus_are_read_by_the_store(
    real_milvus: RealMilvus, root_client: MilvusClient
) -> None:
    root_client.create_role("w_reader")
    root_client.grant_privilege("w_reader", "Collection", "Search", "c7", db_name="db7")
    root_client.create_user("w_user", "password1")
    root_client.grant_role("w_user", "w_reader")

    async def read() -> object:
        settings = EtcdSettings(endpoints=(Endpoint.parse(real_milvus.etcd.endpoint),))
        async with PolicyStore(settings, RbacLayout(real_milvus.meta_root)) as store:
            return await store.snapshot()

    snapshot = asyncio.run(read())
    assert {"admin", "public", "w_reader"} <= snapshot.roles  # type: ignore[attr-defined]
    assert snapshot.roles_of("w_user") == {"w_reader"}  # type: ignore[attr-defined]
    (grant,) = snapshot.grants_of("w_reader")  # type: ignore[attr-defined]
    assert (grant.target.object_type, grant.target.database, grant.target.name) == (
        "Collection", "db7", "c7",
    )  # fmt: skip
    assert (grant.privilege, grant.grantor) == ("PrivilegeSearch", "root")
    # public's default grants: on every database (`*`), granted by root (2.3; see above).
    public = {
        (g.target.object_type, g.target.database, g.privilege) for g in snapshot.grants_of("public")
    }  # type: ignore[attr-defined]
    assert ("Collection", "*", "PrivilegeIndexDetail") in public


def test_a_key_milvus_cannot_verify_is_refused_as_milvus_refuses_it(
    real_milvus: RealMilvus, proxy_factory: ProxyFactory
) -> None:
    """A colon-less token is an API key to both; a key neither knows gets the same refusal.

    Stock Milvus has no key store (its hook is a plugin nobody ships), so every key is one it
    cannot verify: milvus-auth answers an unknown key with Milvus's code and text, so clients
    and their retry logic see one behaviour. Compared on the wire: pymilvus turns both into one
    connection error of its own.
    """
    proxy = proxy_factory(
        etcd_endpoint=real_milvus.etcd.endpoint,
        meta_root=real_milvus.meta_root,
        upstream=f"127.0.0.1:{real_milvus.port}",
        root_password=None,
    )
    keys = [f"mak_{'0' * 16}_{'A' * 43}", "mak_short", "not-a-key-of-ours"]
    cases = [(key, method) for key in keys for method in ("ShowCollections", "Connect")]

    def refusals(address: str) -> list[tuple[grpc.StatusCode, str]]:
        found = []
        with grpc.insecure_channel(address) as channel:
            for key, method in cases:
                call = channel.unary_unary(f"/milvus.proto.milvus.MilvusService/{method}")
                header = (("authorization", base64.b64encode(key.encode()).decode()),)
                with pytest.raises(grpc.RpcError) as caught:
                    call(b"", metadata=header, timeout=30)
                found.append((caught.value.code(), caught.value.details()))
        return found

    theirs = refusals(f"127.0.0.1:{real_milvus.port}")
    assert theirs[0] == (grpc.StatusCode.UNAUTHENTICATED, API_KEY_REFUSAL)
    assert refusals(proxy.address) == theirs
