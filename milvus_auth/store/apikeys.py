"""API key records on etcd: `<meta-root>/milvus-auth/api-keys/<id>`, JSON, one per key.

The project's own prefix inside Milvus's meta root: a stock Milvus never reads these keys, and
Milvus's backup of its meta root carries them along. Writes that depend on a read are
compare-and-swap on the key's mod revision, as for credential records.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aetcd

from milvus_auth.core.apikeys import ApiKeyRecord
from milvus_auth.store.client import ConnectedStore, EtcdConnection
from milvus_auth.store.errors import RevisionConflict
from milvus_auth.store.settings import EtcdSettings

log = logging.getLogger(__name__)

API_KEYS_PATH = "milvus-auth/api-keys/"


class ApiKeyExists(Exception):
    """A record with that id exists already (ids are random: practically a bug)."""


@dataclass(frozen=True)
class StoredApiKey:
    """A record as read from etcd, with the revision that last modified it."""

    record: ApiKeyRecord
    mod_revision: int


class ApiKeyStore(ConnectedStore):
    """create / get / list / touch / update / delete of API key records under one meta root."""

    def __init__(self, settings: EtcdSettings, meta_root: str) -> None:
        self.prefix = f"{meta_root.strip('/')}/{API_KEYS_PATH}"
        self.connection = EtcdConnection(settings)

    def key_for(self, key_id: str) -> str:
        """The etcd key of a record."""
        return self.prefix + key_id

    def id_of(self, key: str) -> str:
        """The key id of an etcd key under the prefix."""
        return key.removeprefix(self.prefix)

    async def get(self, key_id: str) -> StoredApiKey | None:
        """The record and its mod revision, or None; a malformed record reads as None (logged)."""
        key = self.key_for(key_id)
        found = await self.connection.call(lambda c: c.get(key.encode()))
        if found is None:
            return None
        return _decoded(key_id, found.value, found.mod_revision)

    async def list(self) -> list[StoredApiKey]:
        """Every readable record, by key id."""
        found = await self.connection.call(lambda c: c.get_prefix(self.prefix.encode()))
        records = (_decoded(self.id_of(kv.key.decode()), kv.value, kv.mod_revision) for kv in found)
        return sorted((r for r in records if r is not None), key=lambda r: r.record.key_id)

    async def create(self, record: ApiKeyRecord) -> int:
        """Write a new record; return its revision or raise `ApiKeyExists`."""
        key = self.key_for(record.key_id).encode()
        value = record.encode()

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.create(key) == 0],
                success=[client.transactions.put(key, value)],
                failure=[],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if not succeeded:
            raise ApiKeyExists(record.key_id)
        return int(responses[0].response_put.header.revision)  # type: ignore[attr-defined]

    async def touch(self, stored: StoredApiKey, when: int) -> int:
        """Record a use at `when` if nobody changed the record since it was read."""
        return await self.update(stored, stored.record.used_at(when))

    async def update(self, stored: StoredApiKey, record: ApiKeyRecord) -> int:
        """Replace `stored` by `record` (same id) if nobody changed it since it was read;
        return the new revision or raise `RevisionConflict`."""
        key = self.key_for(stored.record.key_id).encode()
        value = record.encode()

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.mod(key) == stored.mod_revision],
                success=[client.transactions.put(key, value)],
                failure=[],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if not succeeded:
            raise RevisionConflict(key.decode(), stored.mod_revision)
        return int(responses[0].response_put.header.revision)  # type: ignore[attr-defined]

    async def delete(self, key_id: str) -> bool:
        """Revoke: remove the record; True if there was one (an absent key is not an error)."""
        key = self.key_for(key_id).encode()
        deleted = await self.connection.call(lambda c: c.delete(key))
        return deleted is not None


def _decoded(key_id: str, value: bytes, revision: int) -> StoredApiKey | None:
    try:
        return StoredApiKey(ApiKeyRecord.decode(key_id, value), revision)
    except ValueError as error:
        # A key that cannot be read cannot be used: treated as absent, and said once here.
        log.warning("unreadable API key record %s: %s", key_id[:32].encode("unicode_escape"), error)
        return None
