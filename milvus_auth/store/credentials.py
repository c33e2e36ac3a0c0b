"""The credential store: Milvus's user records on etcd, read and written with revisions.

Every write that depends on what was read is a compare-and-swap on the key's mod revision, so
two writers (the operator, a proxy serving `UpdateCredential`, the CLI) never lose an update.
"""

from __future__ import annotations

from dataclasses import dataclass

import aetcd

from milvus_auth.core import (
    CredentialRecord,
    KeyLayout,
    LayoutName,
    UserExists,
    ensure_creatable,
)
from milvus_auth.store.client import ConnectedStore, EtcdConnection
from milvus_auth.store.errors import RevisionConflict
from milvus_auth.store.settings import EtcdSettings


@dataclass(frozen=True)
class StoredCredential:
    """A record as read from etcd, with the revision that last modified it."""

    record: CredentialRecord
    mod_revision: int

    @property
    def username(self) -> str:
        """The record's username."""
        return self.record.username


# Each failed attempt means another writer's write landed: 64 in a row is a storm, not a race.
_CREATE_ATTEMPTS = 64


class CredentialStore(ConnectedStore):
    """get / list / create / update / delete of credential records in one key layout."""

    def __init__(self, settings: EtcdSettings, layout: KeyLayout) -> None:
        self.layout = layout
        self.connection = EtcdConnection(settings)

    async def get(self, username: str) -> StoredCredential | None:
        """The user's record and its mod revision, or None when there is none."""
        key = self.layout.key_for(username)
        found = await self.connection.call(lambda c: c.get(key.encode()))
        if found is None:
            return None
        return StoredCredential(self.layout.decode(key, found.value), found.mod_revision)

    async def list_usernames(self) -> list[str]:
        """Every username with a record, sorted (a keys-only prefix scan)."""
        return sorted((await self._users())[0])

    async def revision(self) -> int:
        """etcd's current revision (the store's header revision)."""
        return (await self._users())[1]

    async def ensure_room(self, username: str, *, max_users: int | None) -> None:
        """Raise `UserExists` or `UserLimitReached` if creating `username` would fail now (a
        cheap early answer, before hashing: `create` checks again in its transaction)."""
        ensure_creatable(username, (await self._users())[0], max_users=max_users)

    async def create(self, record: CredentialRecord, *, max_users: int | None = None) -> int:
        """Write a record only if the user has none and, with `max_users`, only while fewer
        users than that exist; return its revision, or raise `UserExists` / `UserLimitReached`.

        The limit holds against every concurrent writer that goes through a transaction:
        the write compares every key under the users prefix against the revision the count
        was read at, so a user created (or rewritten) by anyone in between makes the write
        fail and the count is read again. No counter key: stock Milvus would not keep one.
        """
        key = self.layout.key_for(record.username).encode()
        value = self.layout.encode(record)
        prefix = self.layout.users_prefix.encode()
        for _ in range(_CREATE_ATTEMPTS):
            existing, revision = await self._users() if max_users is not None else ((), 0)
            ensure_creatable(record.username, existing, max_users=max_users)

            async def txn(
                client: aetcd.Client, revision: int = revision
            ) -> tuple[bool, list[object]]:
                compare = [client.transactions.create(key) == 0]
                if max_users is not None:
                    unchanged = client.transactions.mod(prefix, _prefix_end(prefix))
                    compare.append(unchanged < revision + 1)
                result: tuple[bool, list[object]] = await client.transaction(
                    compare=compare, success=[client.transactions.put(key, value)], failure=[]
                )
                return result

            succeeded, responses = await self.connection.call(txn)
            if succeeded:
                return _put_revision(responses)
            if max_users is None:
                raise UserExists(record.username)
        raise RevisionConflict(self.layout.users_prefix, revision)

    async def _users(self) -> tuple[list[str], int]:
        """Every username with a record, and the revision they were read at."""
        prefix = self.layout.users_prefix
        found = await self.connection.call(lambda c: c.get_prefix(prefix.encode(), keys_only=True))
        names = [self.layout.username_of(kv.key.decode()) for kv in found]
        return names, int(found.header.revision)

    async def update(self, record: CredentialRecord, *, expected_revision: int) -> int:
        """Replace a record if nobody changed it since `expected_revision`; return the new one."""
        key = self.layout.key_for(record.username).encode()
        value = self.layout.encode(record)

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.mod(key) == expected_revision],
                success=[client.transactions.put(key, value)],
                failure=[],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if not succeeded:
            raise RevisionConflict(key.decode(), expected_revision)
        return _put_revision(responses)

    async def delete(self, username: str, *, expected_revision: int | None = None) -> bool:
        """Delete the record and the user's role mappings; True if a record was deleted.

        A user with no record is not an error. With `expected_revision`, the delete happens only
        if the record is unchanged since then (`RevisionConflict` otherwise).
        """
        key = self.layout.key_for(username).encode()
        # Milvus deletes `user-role-mapping/<user>/...` with the user (milvus#25977).
        mappings = f"{self.layout.role_mappings_prefix}{username}/".encode()

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            compare = (
                [client.transactions.mod(key) == expected_revision]
                if expected_revision is not None
                else []
            )
            ops = [client.transactions.delete(key)]
            if self.layout.name is LayoutName.MILVUS:
                ops.append(client.transactions.delete(mappings, range_end=_prefix_end(mappings)))
            result: tuple[bool, list[object]] = await client.transaction(
                compare=compare, success=ops, failure=[]
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if not succeeded:
            raise RevisionConflict(key.decode(), expected_revision or 0)
        return bool(responses[0].response_delete_range.deleted)  # type: ignore[attr-defined]


def _put_revision(responses: list[object]) -> int:
    return int(responses[0].response_put.header.revision)  # type: ignore[attr-defined]


def _prefix_end(prefix: bytes) -> bytes:
    return aetcd.utils.prefix_range_end(prefix)  # type: ignore[no-any-return]
