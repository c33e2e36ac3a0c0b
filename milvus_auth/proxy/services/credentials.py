"""Milvus's credential RPCs, served by the proxy itself against etcd (never forwarded).

`CreateCredential`, `UpdateCredential`, `DeleteCredential` and `ListCredUsers` behave as a
Milvus proxy and RootCoord do together (milvus:internal/proxy/impl.go, rootcoord/meta_table.go):
the same validation, the same `common.Status` codes and reasons, base64 passwords, the
old-password rule that super users skip, root never deletable, at most `--max-users` users
(Milvus's 100 by default, held by the store's create transaction across proxies). Who may
call them is the privilege check's business (Milvus's privileges; super users act like
`admin` there); with authorization off (`admin_check`), only root and super users create or
delete users and change other users' passwords. With authentication off, nobody is trusted to
skip the old password. The caller is the call's `Identity`, never the raw header.
Every bcrypt runs in the proxy's bcrypt pool, and an old password is checked under the same
failure limits as a login, so a password change is no side door for guessing.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core import (
    ROOT_USERNAME,
    CredentialError,
    CredentialRecord,
    InvalidParameter,
    OldPasswordMismatch,
    PrivilegeNotPermitted,
    UserNotFound,
    ensure_deletable,
    validate_username,
)
from milvus_auth.core.credentials import DEFAULT_MAX_USERS
from milvus_auth.core.passwords import PasswordPolicy
from milvus_auth.proxy.authn.bcrypt_pool import BcryptPool
from milvus_auth.proxy.authn.identity import current_identity
from milvus_auth.proxy.errors import StoreUnavailable, failure_status
from milvus_auth.proxy.logsafe import INVALID, shown_text, shown_username, valid_username
from milvus_auth.store import (
    CredentialStore,
    EtcdUnavailable,
    RevisionConflict,
    StoredCredential,
)

log = logging.getLogger(__name__)

SERVICE = "milvus.proto.milvus.MilvusService"
_ErrorCode = common_pb2.ErrorCode

Context = grpc.aio.ServicerContext[Any, Any]


class Authenticator(Protocol):
    """The authenticator, seen from here: a change makes this proxy forget the user at once,
    and an old password is checked as a login is."""

    def invalidate(self, username: str) -> None:
        """Forget whatever the cache holds for the user."""

    async def check_password(
        self, username: str, password: str, hashed: str | None, *, peer: str
    ) -> bool:
        """Whether the password matches `hashed` (None: no record), under the failure limits."""


class ConcurrentChange(CredentialError):
    """The record changed twice while a password update was computing its new hash."""

    def __init__(self, username: str) -> None:
        super().__init__(f"credential of {username} changed concurrently, please retry")


def decode_password(encoded: str, what: str) -> str:
    """A password as pymilvus sends it: standard padded base64 of its UTF-8 bytes."""
    try:
        return base64.b64decode(encoded.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError) as error:
        raise InvalidParameter(f"decode {what} fail", "expected base64 of UTF-8 text") from error


class CredentialService:
    """The four credential RPCs on one credential store."""

    def __init__(
        self,
        store: CredentialStore,
        authenticator: Authenticator,
        *,
        pool: BcryptPool,
        super_users: frozenset[str],
        bcrypt_cost: int,
        password_policy: PasswordPolicy | None = None,
        auth_enabled: bool = True,
        admin_check: bool = True,
        max_users: int | None = DEFAULT_MAX_USERS,
    ) -> None:
        self._store = store
        self._authenticator = authenticator
        self._pool = pool
        self._super_users = super_users
        self._cost = bcrypt_cost
        self._policy = password_policy or PasswordPolicy()
        self._auth_enabled = auth_enabled
        self._admin_check = admin_check
        self._max_users = max_users

    def _caller(self) -> str | None:
        # With authentication off nobody is proved, so no caller is trusted to skip a check.
        identity = current_identity() if self._auth_enabled else None
        return None if identity is None else identity.username

    def _require_admin(self, caller: str | None, privilege: str) -> None:
        """With authorization off (`admin_check`), only root and super users manage other
        users; with it on, the privilege check has already decided (super users included)."""
        if not self._auth_enabled or not self._admin_check:
            return
        if caller == ROOT_USERNAME or caller in self._super_users:
            return
        identity = current_identity()
        database = identity.database if identity is not None else "default"
        raise PrivilegeNotPermitted(
            f"{privilege}: permission deny to {caller or ''} in the `{database}` database"
        )

    async def create(
        self, request: milvus_pb2.CreateCredentialRequest, context: Context
    ) -> common_pb2.Status:
        """CreateCredential: a new user, refused if it exists or the limit is reached."""
        caller = self._caller()
        self._require_admin(caller, "PrivilegeCreateOwnership")
        username = validate_username(request.username)
        password = decode_password(request.password, "password")
        self._policy.check(username, password)
        # Refused before the bcrypt when it would be; the create's transaction decides.
        await self._store.ensure_room(username, max_users=self._max_users)
        hashed = await self._pool.hash(password, self._cost)
        await self._store.create(CredentialRecord(username, hashed), max_users=self._max_users)
        self._authenticator.invalidate(username)
        return common_pb2.Status()

    async def update(
        self, request: milvus_pb2.UpdateCredentialRequest, context: Context
    ) -> common_pb2.Status:
        """UpdateCredential: a new password; the old one must verify unless a super user asks."""
        caller = self._caller()
        username = validate_username(request.username)
        if caller != username:
            self._require_admin(caller, "PrivilegeUpdateUser")
        old_password = decode_password(request.oldPassword, "old password")
        new_password = decode_password(request.newPassword, "password")
        self._policy.check(username, new_password)
        skip_old = caller is not None and caller in self._super_users
        proof = None if skip_old else (old_password, context.peer())
        stored = await self._current(username, proof)
        # Hashed only once the old password verified: a wrong guess costs one bcrypt, not two.
        hashed = await self._pool.hash(new_password, self._cost)
        try:
            await self._replace(stored, hashed)
        except RevisionConflict:
            # Someone else wrote the record meanwhile: check again against what is there now.
            stored = await self._current(username, proof)
            try:
                await self._replace(stored, hashed)
            except RevisionConflict as error:
                raise ConcurrentChange(username) from error
        self._authenticator.invalidate(username)
        return common_pb2.Status()

    async def _current(self, username: str, proof: tuple[str, str] | None) -> StoredCredential:
        """The user's record, once the old password (given with the caller's peer) verified
        against it; `proof` None skips the check (a super user)."""
        stored = await self._store.get(username)
        if proof is not None:
            old_password, peer = proof
            hashed = None if stored is None else stored.record.encrypted_password
            if not await self._authenticator.check_password(
                username, old_password, hashed, peer=peer
            ):
                raise OldPasswordMismatch(username)
        if stored is None:
            raise UserNotFound(username)
        return stored

    async def _replace(self, stored: StoredCredential, hashed: str) -> None:
        await self._store.update(
            stored.record.with_password(hashed), expected_revision=stored.mod_revision
        )

    async def delete(
        self, request: milvus_pb2.DeleteCredentialRequest, context: Context
    ) -> common_pb2.Status:
        """DeleteCredential: remove the user and its role mappings; absent is not an error."""
        caller = self._caller()
        self._require_admin(caller, "PrivilegeDropOwnership")
        username = validate_username(request.username)
        ensure_deletable(username)
        await self._store.delete(username)
        self._authenticator.invalidate(username)
        return common_pb2.Status()

    async def list_users(
        self, _: milvus_pb2.ListCredUsersRequest, __: Context
    ) -> milvus_pb2.ListCredUsersResponse:
        """ListCredUsers: every username with a record."""
        usernames = await self._store.list_usernames()
        return milvus_pb2.ListCredUsersResponse(status=common_pb2.Status(), usernames=usernames)


Behaviour = Callable[[Any, Context], Awaitable[Any]]

# method -> (request type, the legacy error_code RootCoord answers that method's failures with)
_METHODS: dict[str, tuple[Any, int]] = {
    "CreateCredential": (milvus_pb2.CreateCredentialRequest, _ErrorCode.CreateCredentialFailure),
    "UpdateCredential": (milvus_pb2.UpdateCredentialRequest, _ErrorCode.UpdateCredentialFailure),
    "DeleteCredential": (milvus_pb2.DeleteCredentialRequest, _ErrorCode.DeleteCredentialFailure),
    "ListCredUsers": (milvus_pb2.ListCredUsersRequest, _ErrorCode.ListCredUsersFailure),
}


def credential_handlers(service: CredentialService) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """gRPC handlers for the four methods, keyed by full path, for the proxy's router."""
    behaviours: dict[str, Behaviour] = {
        "CreateCredential": service.create,
        "UpdateCredential": service.update,
        "DeleteCredential": service.delete,
        "ListCredUsers": service.list_users,
    }
    return {
        f"/{SERVICE}/{method}": grpc.unary_unary_rpc_method_handler(
            _rpc(method, behaviours[method], failure_code),
            request_deserializer=request_type.FromString,
            response_serializer=_serialize,
        )
        for method, (request_type, failure_code) in _METHODS.items()
    }


def _rpc(method: str, behaviour: Behaviour, failure_code: int) -> Behaviour:
    """One RPC: domain and etcd errors become Milvus's failed status; every change is logged."""

    async def handler(request: Any, context: Context) -> Any:
        target: str | None = getattr(request, "username", None)
        target = None if target is None else target.strip()
        user = shown_username(target)
        identity = current_identity()
        caller = shown_username(None if identity is None else identity.username)
        try:
            response = await behaviour(request, context)
        except EtcdUnavailable as error:
            failed: CredentialError = StoreUnavailable(str(error))
        except CredentialError as error:
            failed = error
        else:
            if method != "ListCredUsers":
                log.info("credential %s user=%s caller=%s result=ok", method, user, caller)
            return response
        # Milvus's reasons for a bad username quote it, and it may be anything (a password).
        quoted_name = target is not None and not valid_username(target)
        log.warning(
            "credential %s user=%s caller=%s result=refused code=%s reason=%s",
            method,
            user,
            caller,
            failed.code,
            INVALID if quoted_name else shown_text(failed.reason),
        )
        status = failure_status(failed, failure_code)
        if method == "ListCredUsers":
            return milvus_pb2.ListCredUsersResponse(status=status)
        return status

    return handler


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
