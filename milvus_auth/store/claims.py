"""Who manages which username: one claim per username under the project's own etcd prefix.

The claim keeps two MilvusUsers from fighting over one Milvus user (first one wins) and marks
which users the operator created, without adding anything to Milvus's own record.
"""

from __future__ import annotations

import aetcd

from milvus_auth.store.client import EtcdConnection

CLAIMS_ROOT = "milvus-auth"


class ClaimStore:
    """Create-if-absent claims keyed by username, scoped to one Milvus meta root."""

    def __init__(self, connection: EtcdConnection, meta_root: str) -> None:
        self.connection = connection
        self.prefix = f"{CLAIMS_ROOT}/{meta_root.strip('/')}/claims/"

    async def claim(self, username: str, owner: str) -> str:
        """Claim `username` for `owner` if nobody holds it; return whoever holds it now."""
        key = (self.prefix + username).encode()

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.create(key) == 0],
                success=[client.transactions.put(key, owner.encode())],
                failure=[client.transactions.get(key)],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if succeeded:
            return owner
        holders = responses[0]
        assert isinstance(holders, list)
        return str(holders[0][0].decode()) if holders else owner

    async def owner_of(self, username: str) -> str | None:
        """The current holder of `username`, if any."""
        found = await self.connection.call(lambda c: c.get((self.prefix + username).encode()))
        return None if found is None else str(found.value.decode())

    async def release(self, username: str, owner: str) -> None:
        """Drop the claim if `owner` still holds it; a claim held by another owner stays."""
        key = (self.prefix + username).encode()
        await self.connection.call(
            lambda c: c.transaction(
                compare=[c.transactions.value(key) == owner.encode()],
                success=[c.transactions.delete(key)],
                failure=[],
            )
        )
