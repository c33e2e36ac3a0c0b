"""Who manages which username or role: one claim per name under the project's own etcd prefix.

The claim keeps two MilvusUsers from fighting over one Milvus user (first one wins) and records
whether the operator created the user or adopted one that already existed, without adding
anything to Milvus's own record. Its value is a small JSON object,
`{"owner": "namespace/name", "origin": "created" | "adopted"}`; a plain-string value (written
before origins existed) is its owner, with origin "created".
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

import aetcd

from milvus_auth.store.client import EtcdConnection

CLAIMS_ROOT = "milvus-auth"


class Origin(enum.StrEnum):
    """How the claimed Milvus user came to be managed."""

    CREATED = "created"
    """The operator wrote the first record: deleting the MilvusUser may delete the user."""
    ADOPTED = "adopted"
    """The user existed before the claim: deleting the MilvusUser never deletes it."""


@dataclass(frozen=True)
class Claim:
    """One username's claim: who holds it and how the user came to be managed."""

    owner: str
    origin: Origin = Origin.CREATED

    def to_bytes(self) -> bytes:
        """The stored value."""
        return json.dumps({"owner": self.owner, "origin": self.origin.value}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Claim:
        """Parse a stored value; anything that is not the JSON shape is a legacy owner string."""
        text = raw.decode()
        try:
            value = json.loads(text)
        except ValueError:
            return cls(text)
        if not isinstance(value, dict) or not isinstance(value.get("owner"), str):
            return cls(text)
        origin = value.get("origin")
        return cls(value["owner"], Origin(origin) if origin in set(Origin) else Origin.CREATED)


class ClaimStore:
    """Create-if-absent claims keyed by name, scoped to one Milvus meta root and one kind.

    `kind` keeps the namespaces of names apart: `claims` (the default) holds usernames,
    `role-claims` role names, so a user and a role of the same name never share a claim.
    """

    def __init__(self, connection: EtcdConnection, meta_root: str, *, kind: str = "claims") -> None:
        self.connection = connection
        self.prefix = f"{CLAIMS_ROOT}/{meta_root.strip('/')}/{kind}/"

    async def claim(self, username: str, claim: Claim) -> Claim:
        """Store `claim` for `username` if nobody holds it; return the claim that holds now."""
        key = (self.prefix + username).encode()

        async def txn(client: aetcd.Client) -> tuple[bool, list[object]]:
            result: tuple[bool, list[object]] = await client.transaction(
                compare=[client.transactions.create(key) == 0],
                success=[client.transactions.put(key, claim.to_bytes())],
                failure=[client.transactions.get(key)],
            )
            return result

        succeeded, responses = await self.connection.call(txn)
        if succeeded:
            return claim
        holders = responses[0]
        assert isinstance(holders, list)
        return Claim.from_bytes(holders[0][0]) if holders else claim

    async def get(self, username: str) -> Claim | None:
        """The claim on `username`, if any."""
        found = await self.connection.call(lambda c: c.get((self.prefix + username).encode()))
        return None if found is None else Claim.from_bytes(found.value)

    async def release(self, username: str, owner: str) -> None:
        """Drop the claim if `owner` still holds it; a claim held by another owner stays."""
        key = (self.prefix + username).encode()
        found = await self.connection.call(lambda c: c.get(key))
        if found is None or Claim.from_bytes(found.value).owner != owner:
            return
        # Compared on the exact bytes read: a claim re-taken in between is not dropped.
        await self.connection.call(
            lambda c: c.transaction(
                compare=[c.transactions.value(key) == found.value],
                success=[c.transactions.delete(key)],
                failure=[],
            )
        )
