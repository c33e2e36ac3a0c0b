"""The credential RPCs through a real in-process gRPC server, a pymilvus stub and a real etcd.

No auth interceptor runs here: the router plays the edge and makes the caller's `Identity` from
the `authorization` header's username, unverified. These tests check the permission rules, not
authentication (tests/integration does both).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc

from milvus_auth.core import CredentialRecord, InvalidParameter, hash_password, verify_password
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.headers import AuthFailure, authorization_values, parse_authorization
from milvus_auth.proxy.authn.identity import Identity, Proof, bind_identity, header_database
from milvus_auth.proxy.guard import guard
from milvus_auth.proxy.metrics import ProxyMetrics
from milvus_auth.proxy.services.credentials import (
    CredentialService,
    credential_handlers,
    decode_password,
)
from milvus_auth.store import CredentialStore, StoredCredential
from tests.harness.processes import EtcdServer

ROOT_PASSWORD = "RootPass1"
ALICE_PASSWORD = "AlicePass1"
Codes = common_pb2.ErrorCode


class RecordingCache:
    """The authenticator's part: records invalidations and old-password checks."""

    def __init__(self) -> None:
        self.invalidated: list[str] = []
        self.checked: list[tuple[str, str]] = []

    def invalidate(self, username: str) -> None:
        self.invalidated.append(username)

    async def check_password(
        self, username: str, password: str, hashed: str | None, *, peer: str
    ) -> bool:
        self.checked.append((username, peer))
        return hashed is not None and verify_password(password, hashed)


@pytest.fixture
def pool() -> Iterator[BcryptPool]:
    threads = BcryptPool(cost=4, metrics=ProxyMetrics())
    yield threads
    threads.close()


async def unverified_identity(_: Any, context: Any) -> None:
    """The edge, minus the password check: the header's username becomes the identity."""
    metadata = context.invocation_metadata()
    try:
        username = parse_authorization(authorization_values(metadata)).username
    except AuthFailure:
        return
    bind_identity(Identity(username, Proof.PASSWORD, header_database(metadata)))


class Router(grpc.GenericRpcHandler):
    """Serves the handlers by full method path, as the proxy's server does."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]) -> None:
        self.handlers = {
            method: guard(handler, [unverified_identity]) for method, handler in handlers.items()
        }

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self.handlers.get(handler_call_details.method)


@dataclass
class Client:
    stub: milvus_pb2_grpc.MilvusServiceStub
    cache: RecordingCache
    store: CredentialStore

    async def call(self, method: str, request: Any, caller: str | None = "root") -> Any:
        metadata = () if caller is None else (("authorization", _b64(f"{caller}:whatever")),)
        rpc: Callable[..., Awaitable[Any]] = getattr(self.stub, method)
        return await rpc(request, metadata=metadata)

    async def create(self, username: str, password: str, caller: str | None = "root") -> Any:
        request = milvus_pb2.CreateCredentialRequest(username=username, password=_b64(password))
        return await self.call("CreateCredential", request, caller)

    async def update(self, username: str, old: str, new: str, caller: str | None) -> Any:
        request = milvus_pb2.UpdateCredentialRequest(
            username=username, oldPassword=_b64(old), newPassword=_b64(new)
        )
        return await self.call("UpdateCredential", request, caller)

    async def delete(self, username: str, caller: str | None = "root") -> Any:
        request = milvus_pb2.DeleteCredentialRequest(username=username)
        return await self.call("DeleteCredential", request, caller)

    async def stored(self, username: str) -> StoredCredential:
        found = await self.store.get(username)
        assert found is not None
        return found


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


Connect = Callable[..., Awaitable[Client]]


@pytest.fixture
async def connect(store: CredentialStore, pool: BcryptPool) -> AsyncIterator[Connect]:
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []
    await store.create(CredentialRecord("root", hash_password(ROOT_PASSWORD, 4)))

    async def start(**options: Any) -> Client:
        cache = RecordingCache()
        settings: dict[str, Any] = {"super_users": frozenset({"admin"}), "bcrypt_cost": 4}
        service = CredentialService(store, cache, pool=pool, **{**settings, **options})
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((Router(credential_handlers(service)),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return Client(milvus_pb2_grpc.MilvusServiceStub(channel), cache, store)

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def _ok(status: common_pb2.Status) -> None:
    assert (status.error_code, status.code, status.reason) == (0, 0, "")


def _failed(status: common_pb2.Status, legacy: int, code: int, reason: str) -> None:
    assert (status.error_code, status.code, status.reason) == (legacy, code, reason)


async def test_create_list_and_the_stored_hash(connect: Connect) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    stored = await client.stored("alice")
    assert stored.record.encrypted_password.startswith("$2a$04$")
    assert verify_password(ALICE_PASSWORD, stored.record.encrypted_password)
    assert client.cache.invalidated == ["alice"]
    listed = await client.call("ListCredUsers", milvus_pb2.ListCredUsersRequest())
    _ok(listed.status)
    assert list(listed.usernames) == ["alice", "root"]


async def test_create_refusals_are_milvus_statuses(connect: Connect) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    _failed(
        await client.create("alice", ALICE_PASSWORD),
        Codes.CreateCredentialFailure,
        65535,
        "user already exists: alice",
    )
    _failed(
        await client.create("1alice", ALICE_PASSWORD),
        Codes.IllegalArgument,
        1100,
        "invalid user name 1alice, the first character must be a letter, but got 1: "
        "invalid parameter",
    )
    _failed(
        await client.create("bob", "short"),
        Codes.IllegalArgument,
        1100,
        "invalid password length: invalid parameter[5 out of range 6 <= value <= 72]",
    )
    bad_base64 = milvus_pb2.CreateCredentialRequest(username="bob", password="%%%not base64")
    _failed(
        await client.call("CreateCredential", bad_base64),
        Codes.IllegalArgument,
        1100,
        "decode password fail: invalid parameter[expected base64 of UTF-8 text]",
    )
    assert await client.store.list_usernames() == ["alice", "root"]


async def test_user_limit(connect: Connect) -> None:
    client = await connect(max_users=2)
    _ok(await client.create("alice", ALICE_PASSWORD))
    _failed(
        await client.create("bob", ALICE_PASSWORD),
        Codes.CreateCredentialFailure,
        65535,
        "unable to add user because the number of users has reached the limit",
    )
    assert await client.store.get("bob") is None


async def test_only_root_and_super_users_create_and_delete(connect: Connect) -> None:
    client = await connect()
    _failed(
        await client.create("bob", ALICE_PASSWORD, caller="alice"),
        Codes.UnexpectedError,
        1401,
        "PrivilegeCreateOwnership: permission deny to alice in the `default` database: "
        "privilege not permitted",
    )
    _failed(
        await client.create("bob", ALICE_PASSWORD, caller=None),
        Codes.UnexpectedError,
        1401,
        "PrivilegeCreateOwnership: permission deny to  in the `default` database: "
        "privilege not permitted",
    )
    _ok(await client.create("bob", ALICE_PASSWORD, caller="admin"))
    _failed(
        await client.delete("bob", caller="bob"),
        Codes.UnexpectedError,
        1401,
        "PrivilegeDropOwnership: permission deny to bob in the `default` database: "
        "privilege not permitted",
    )
    assert await client.store.get("bob") is not None
    _ok(await client.delete("bob", caller="admin"))
    assert await client.store.get("bob") is None


async def test_with_auth_off_anyone_manages_users_but_nobody_skips_the_old_password(
    connect: Connect,
) -> None:
    client = await connect(auth_enabled=False)
    _ok(await client.create("alice", ALICE_PASSWORD, caller=None))
    # "admin" is a super user, but with auth off its header proves nothing.
    _failed(
        await client.update("alice", "wrong-old", "NewPass12", caller="admin"),
        Codes.UnexpectedError,
        1400,
        "old password not correct for alice: not authenticated",
    )
    _ok(await client.update("alice", ALICE_PASSWORD, "NewPass12", caller=None))
    _ok(await client.delete("alice", caller=None))


async def test_update_own_password(connect: Connect) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    before = await client.stored("alice")
    _ok(await client.update("alice", ALICE_PASSWORD, "NewPass12", caller="alice"))
    after = await client.stored("alice")
    assert after.mod_revision > before.mod_revision
    assert verify_password("NewPass12", after.record.encrypted_password)
    assert client.cache.invalidated == ["alice", "alice"]


async def test_update_refusals(connect: Connect) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    _ok(await client.create("bob", ALICE_PASSWORD))
    before = await client.stored("alice")
    _failed(
        await client.update("alice", "WrongOld1", "NewPass12", caller="alice"),
        Codes.UnexpectedError,
        1400,
        "old password not correct for alice: not authenticated",
    )
    _failed(
        await client.update("alice", ALICE_PASSWORD, "NewPass12", caller="bob"),
        Codes.UnexpectedError,
        1401,
        "PrivilegeUpdateUser: permission deny to bob in the `default` database: "
        "privilege not permitted",
    )
    _failed(
        await client.update("alice", ALICE_PASSWORD, "tiny", caller="alice"),
        Codes.IllegalArgument,
        1100,
        "invalid password length: invalid parameter[4 out of range 6 <= value <= 72]",
    )
    _failed(
        await client.update("nobody", ALICE_PASSWORD, "NewPass12", caller="root"),
        Codes.UnexpectedError,
        1400,
        "old password not correct for nobody: not authenticated",
    )
    assert (await client.stored("alice")).mod_revision == before.mod_revision


async def test_root_needs_the_old_password_super_users_do_not(connect: Connect) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    _failed(
        await client.update("alice", "forgotten", "NewPass12", caller="root"),
        Codes.UnexpectedError,
        1400,
        "old password not correct for alice: not authenticated",
    )
    _ok(await client.update("alice", "forgotten", "NewPass12", caller="admin"))
    assert verify_password("NewPass12", (await client.stored("alice")).record.encrypted_password)
    _failed(
        await client.update("nobody", "", "NewPass12", caller="admin"),
        Codes.UpdateCredentialFailure,
        65535,
        "user not found: nobody",
    )


async def test_root_is_never_deletable(connect: Connect) -> None:
    client = await connect()
    _failed(
        await client.delete("root", caller="admin"),
        Codes.UnexpectedError,
        1401,
        "root user cannot be deleted: privilege not permitted",
    )
    assert await client.store.get("root") is not None


async def test_delete_absent_user_succeeds(connect: Connect) -> None:
    client = await connect()
    _ok(await client.delete("ghost"))
    assert client.cache.invalidated == ["ghost"]


class InterferingStore(CredentialStore):
    """A real store that lets another writer touch the record before each of our updates."""

    def __init__(self, real: CredentialStore, interferences: int) -> None:
        self.layout = real.layout
        self.connection = real.connection
        self.interferences = interferences

    async def update(self, record: CredentialRecord, *, expected_revision: int) -> int:
        if self.interferences > 0:
            self.interferences -= 1
            current = await self.get(record.username)
            assert current is not None
            # The same hash rewritten: the old password still verifies, the revision moves.
            await super().update(current.record, expected_revision=current.mod_revision)
        return await super().update(record, expected_revision=expected_revision)


@pytest.mark.parametrize(("interferences", "succeeds"), [(1, True), (2, False)])
async def test_update_retries_a_lost_compare_and_swap_once(
    store: CredentialStore,
    connect: Connect,
    pool: BcryptPool,
    interferences: int,
    succeeds: bool,
) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    interfering = InterferingStore(store, interferences)
    service = CredentialService(
        interfering, RecordingCache(), pool=pool, super_users=frozenset(), bcrypt_cost=4
    )
    handler = credential_handlers(service)["/milvus.proto.milvus.MilvusService/UpdateCredential"]
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (Router({"/milvus.proto.milvus.MilvusService/UpdateCredential": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            other = Client(milvus_pb2_grpc.MilvusServiceStub(channel), client.cache, store)
            status = await other.update("alice", ALICE_PASSWORD, "NewPass12", caller="alice")
    finally:
        await server.stop(None)
    final = (await client.stored("alice")).record.encrypted_password
    if succeeds:
        _ok(status)
        assert verify_password("NewPass12", final)
    else:
        _failed(
            status,
            Codes.UpdateCredentialFailure,
            65535,
            "credential of alice changed concurrently, please retry",
        )
        assert verify_password(ALICE_PASSWORD, final)


async def test_etcd_down_is_a_failed_status(connect: Connect, etcd: EtcdServer) -> None:
    client = await connect()
    etcd.stop()
    try:
        listed = await client.call("ListCredUsers", milvus_pb2.ListCredUsersRequest())
        created = await client.create("alice", ALICE_PASSWORD)
    finally:
        etcd.start()
    assert (listed.status.error_code, listed.status.code) == (Codes.ListCredUsersFailure, 65535)
    assert listed.status.reason
    assert list(listed.usernames) == []
    assert (created.error_code, created.code) == (Codes.CreateCredentialFailure, 65535)


async def test_logs_name_the_change_but_never_a_secret(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    _ok(await client.update("alice", ALICE_PASSWORD, "NewPass12", caller="alice"))
    await client.update("alice", "WrongOld1", "Other1234", caller="alice")
    _ok(await client.delete("alice"))
    text = caplog.text
    assert "credential CreateCredential user='alice' caller='root' result=ok" in text
    assert "credential UpdateCredential user='alice' caller='alice' result=refused code=1400" in (
        text
    )
    assert "credential DeleteCredential user='alice' caller='root' result=ok" in text
    for secret in (ALICE_PASSWORD, "NewPass12", "WrongOld1", "Other1234", "$2a$"):
        assert secret not in text
        assert _b64(secret) not in text


@given(st.text(max_size=200))
def test_decode_password_returns_text_or_invalid_parameter(encoded: str) -> None:
    outcome: str | InvalidParameter
    try:
        outcome = decode_password(encoded, "password")
    except InvalidParameter as error:
        outcome = error
    if isinstance(outcome, InvalidParameter):
        assert outcome.code == 1100
        assert outcome.reason.startswith("decode password fail: invalid parameter")
    else:
        assert base64.b64encode(outcome.encode()).decode() == encoded


@given(st.text(max_size=100))
def test_decode_password_round_trips(password: str) -> None:
    assert decode_password(_b64(password), "password") == password


async def test_the_old_password_is_checked_by_the_authenticator_with_the_callers_address(
    connect: Connect,
) -> None:
    client = await connect()
    _ok(await client.create("alice", ALICE_PASSWORD))
    status = await client.update("alice", "Wrong-Old-1", "NewPass12", caller="alice")
    assert status.code == 1400
    ((username, peer),) = client.cache.checked
    assert username == "alice"
    assert peer.startswith("ipv4:127.0.0.1:")
