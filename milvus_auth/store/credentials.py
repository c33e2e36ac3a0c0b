"""The credential store: Milvus's user records on etcd, read and written with revisions.

Every write that depends on what was read is a compare-and-swap on the key's mod revision, so
two writers (the operator, a proxy serving `UpdateCredential`, the CLI) never lose an update.
"""

from __future__ import annotations

from dataclasses import dataclass

import aetcd

from milvus_auth.core import CredentialRecord, KeyLayout, LayoutName, UserExists
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
        prefix = self.layout.users_prefix
        found = await self.connection.call(lambda c: c.get_prefix(prefix.encode(), keys_only=True))
        return sorted(self.layout.username_of(kv.key.decode()) for kv in found)

    async def revision(self) -> int:
        """etcd's current revision (the store's header revision)."""
        found = await self.connection.call(
            lambda c: c.get_prefix(self.layout.users_prefix.encode(), keys_only=True)
        )
        return int(found.header.revision)

    async def create(self, record: CredentialRecord) -> int:
        """Write a record only if the user has none; return its revision or raise `UserExists`."""
        key = self.layout.key_for(record.username).encode()
        value = self.layout.encode(record)

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.create(key) == 0],
                success=[client.transactions.put(key, value)],
                failure=[],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if not succeeded:
            raise UserExists(record.username)
        return _put_revision(responses)

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
