"""The MilvusRole operator against the real Milvus 2.3.5: enforcement and the same records.

The operator runs on kmock with the real Milvus's own etcd and meta root, and the Milvus's
internal port as the one proxy endpoint of the fan-out (`RefreshPolicyInfoCache{opType: 7}`).
Milvus 2.3 has neither `grant_privilege_v2` nor privilege groups, so the grants here are single
Collection privileges: the only kind whose v2 record (what the operator writes) equals the v1
record 2.3 writes for `grant_privilege(role, "Collection", privilege, collection)`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_auth.core import KeyLayout
from milvus_auth.core.grants import RbacLayout, grantee_id
from milvus_auth.operator.config import OperatorConfig
from milvus_auth.store import Endpoint, EtcdSettings, PolicyStore
from tests.harness.real_milvus import ROOT_PASSWORD, RealMilvus
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import PROXY_SERVICE, StartOperator

pytestmark = pytest.mark.real_milvus
PASSWORD = "Opuser-password-1"


@pytest.fixture
def root_client(real_milvus: RealMilvus) -> Iterator[MilvusClient]:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    client = MilvusClient(uri=real_milvus.uri, token=f"root:{ROOT_PASSWORD}")
    yield client
    client.close()


def _settings(real_milvus: RealMilvus) -> EtcdSettings:
    return EtcdSettings(endpoints=(Endpoint.parse(real_milvus.etcd.endpoint),))


async def _records(real_milvus: RealMilvus, role: str, user: str) -> dict[str, bytes]:
    """The role's, its grants' and the user's mapping keys, with the role and user names
    replaced by markers and each grantee id (checked to be Milvus's md5 of its key) too."""
    layout = RbacLayout(real_milvus.meta_root)
    async with PolicyStore(_settings(real_milvus), layout) as store:
        root = layout.root + "/"
        found = await store.connection.call(lambda c: c.get_prefix(root.encode()))
    kvs = {kv.key.decode()[len(root) :]: bytes(kv.value) for kv in found}
    ids = {
        value.decode(): key
        for key, value in kvs.items()
        if key.startswith(f"root-coord/credential/grantee-privileges/{role}/")
    }
    assert ids, f"no grants for {role}"
    for grantee, key in ids.items():
        assert grantee == grantee_id(key)  # what a stock RootCoord computes
    mine = {
        key: value
        for key, value in kvs.items()
        if key in {f"root-coord/credential/roles/{role}",
                   f"root-coord/credential/user-role-mapping/{user}/{role}"}
        or key in ids.values()
        or any(key.startswith(f"root-coord/credential/grantee-id/{g}/") for g in ids)
    }  # fmt: skip
    normal = {}
    for key, value in mine.items():
        shown_key, shown_value = key, value
        for grantee in ids:
            shown_key = shown_key.replace(grantee, "<id>")
            shown_value = shown_value.replace(grantee.encode(), b"<id>")
        shown_key = shown_key.replace(f"/{user}/", "/<user>/").replace(f"/{role}", "/<role>")
        normal[shown_key] = shown_value
    return normal


def _denied(call: Callable[[], object]) -> str:
    """The refusal's text; pymilvus raises some refusals as MilvusException, others (insert)
    as the bare gRPC error, whose code must then be PERMISSION_DENIED."""
    with pytest.raises((MilvusException, grpc.RpcError)) as caught:
        call()
    error = caught.value
    if isinstance(error, grpc.RpcError):
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        return str(error.details())  # type: ignore[attr-defined]
    return str(error)


async def test_declared_role_is_enforced_and_written_as_milvus_writes_it(
    real_milvus: RealMilvus,
    root_client: MilvusClient,
    cluster: Cluster,
    operator_config: OperatorConfig,
    start_operator: StartOperator,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    collection, role, user = f"docs_{suffix}", f"op_reader_{suffix}", f"opuser_{suffix}"
    await asyncio.to_thread(root_client.create_collection, collection, dimension=2)
    row = {"id": 1, "vector": [0.1, 0.2]}
    await asyncio.to_thread(root_client.insert, collection, [row])
    # The reference: the same grant and binding made with pymilvus, under other names.
    ref_role, ref_user = f"ref_reader_{suffix}", f"refuser_{suffix}"
    await asyncio.to_thread(root_client.create_role, ref_role)
    await asyncio.to_thread(
        root_client.grant_privilege, ref_role, "Collection", "Query", collection
    )
    await asyncio.to_thread(root_client.create_user, ref_user, PASSWORD)
    await asyncio.to_thread(root_client.grant_role, ref_user, ref_role)

    common = replace(
        operator_config.common,
        etcd=_settings(real_milvus),
        layout=KeyLayout(meta_root=real_milvus.meta_root),
    )
    cluster.set_proxies(PROXY_SERVICE, [("127.0.0.1", real_milvus.internal_port)])
    await start_operator(common=common)
    grant: dict[str, Any] = {
        "privileges": ["Query"],
        "database": "default",
        "collection": collection,
    }
    await cluster.create_role("reader", {"roleName": role, "grants": [grant]})
    await cluster.put_secret("opuser-password", PASSWORD)
    spec = {"username": user, "passwordSecretRef": {"name": "opuser-password"}, "roles": [role]}
    await cluster.create_user("opuser", spec)
    await eventually(lambda: cluster.role_reason("reader") == "Applied", within=30)
    await eventually(lambda: cluster.reason("opuser") == "Applied", within=30)
    assert cluster.role_status("reader")["proxies"]["summary"] == "1/1"

    assert await _records(real_milvus, role, user) == await _records(
        real_milvus, ref_role, ref_user
    )

    client = MilvusClient(uri=real_milvus.uri, token=f"{user}:{PASSWORD}")
    try:
        query = lambda: client.query(  # noqa: E731
            collection, filter="id >= 0", output_fields=["id"], consistency_level="Strong"
        )
        insert = lambda: client.insert(collection, [{"id": 2, "vector": [0.3, 0.4]}])  # noqa: E731
        assert await asyncio.to_thread(query) == [{"id": 1}]
        assert "PrivilegeInsert: permission deny" in await asyncio.to_thread(_denied, insert)

        # Revoking through the spec: enforced by Milvus once the role is Ready again.
        changed = {**grant, "privileges": ["Insert"]}
        await cluster.patch_role(
            "reader", {"metadata": {"generation": 2}, "spec": {"grants": [changed]}}
        )
        await eventually(lambda: cluster.role_status("reader").get("observedGeneration") == 2)
        await eventually(lambda: cluster.role_reason("reader") == "Applied", within=30)
        assert "PrivilegeQuery: permission deny" in await asyncio.to_thread(_denied, query)
        await asyncio.to_thread(insert)
    finally:
        client.close()
        await asyncio.to_thread(root_client.drop_collection, collection)
