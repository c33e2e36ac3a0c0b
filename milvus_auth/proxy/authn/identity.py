"""Who is calling: one frozen `Identity`, made once per call at the edge and handed inward.

The auth interceptor proves the caller and binds the identity to the call's context (a
contextvar: grpc.aio runs each call's checks and handler in one task, so nothing else sees it).
The privilege check and the proxy's own services read it with `current_identity()`; nothing
past the edge parses the `authorization` header again.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterable
from dataclasses import dataclass

DATABASE_METADATA = "dbname"  # strings.ToLower(util.HeaderDBName)
DEFAULT_DATABASE = "default"


class Proof(enum.Enum):
    """How the caller proved who it is."""

    PASSWORD = "password"  # noqa: S105  (a kind of proof, not a password)
    API_KEY = "api_key"  # the user an API key acts as (upstream sees `<user>:___`, as in Milvus)


@dataclass(frozen=True)
class Identity:
    """A proved caller: its username, how it was proved, and the database it acts in."""

    username: str
    proof: Proof
    database: str = DEFAULT_DATABASE


_CURRENT: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "milvus_auth_identity", default=None
)


def bind_identity(identity: Identity) -> None:
    """Make `identity` the current call's (called by the edge once it is proved)."""
    _CURRENT.set(identity)


def current_identity() -> Identity | None:
    """The current call's proved identity; None when authentication is off."""
    return _CURRENT.get()


def header_database(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """`GetCurDBNameFromContextOrDefault`: the first `dbname` value, `default` when empty."""
    for key, value in metadata or ():
        if key == DATABASE_METADATA:
            return value if isinstance(value, str) and value else DEFAULT_DATABASE
    return DEFAULT_DATABASE
