"""API keys for self-hosted Milvus: the key format, its hash, its stored record, durations.

A key is `mak_<id>_<secret>`: a fixed prefix, a public 16-hex-digit id (what logs, statuses and
`apikeys list` show) and a 256-bit secret from `secrets`. It has no colon, so every Milvus SDK
sends it as an API key (`token=KEY`), never as `user:password`. Only a SHA-256 of the secret,
bound to its id, is stored: a 256-bit random secret cannot be guessed, so a slow hash such as
bcrypt would add a bcrypt per cold key and no safety. Records live under the project's own
prefix inside Milvus's meta root, never among Milvus's credential keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from milvus_auth.core.credentials import USERNAME_PATTERN
from milvus_auth.core.errors import MilvusError

KEY_PREFIX = "mak"
ID_BYTES = 8  # 16 hex digits: public, only has to be unique
SECRET_BYTES = 32  # 256 bits
API_KEY_FAILURE = "auth check failure, please check api key is correct"  # Milvus's text
_ID = re.compile(r"[0-9a-f]{16}")
_USERNAME = re.compile(USERNAME_PATTERN)
MAX_KEY_LENGTH = len(KEY_PREFIX) + 2 + 16 + 43
# One match for the whole key: the id's hex digits hold no `_`, so the parts are unambiguous.
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_FIELDS = frozenset(
    {"username", "secret_sha256", "issued_at", "expires_at", "name", "owner", "last_used_at"}
)


class InvalidApiKey(MilvusError):
    """Not a key milvus-auth issued, unknown, wrong, expired or its user gone: one text, so a
    caller cannot tell which."""

    def __init__(self) -> None:
        super().__init__(API_KEY_FAILURE)


@dataclass(frozen=True)
class ApiKey:
    """A key as the client holds it; `token` is what goes into `MilvusClient(token=...)`."""

    key_id: str
    secret: str = field(repr=False)

    @property
    def token(self) -> str:
        """`mak_<id>_<secret>`."""
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        """What is stored instead of the secret."""
        return hash_secret(self.key_id, self.secret)


def generate_api_key() -> ApiKey:
    """A new key with a random id and a 256-bit secret (URL-safe, so never a colon)."""
    return ApiKey(secrets.token_hex(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES))


def parse_api_key(token: str) -> ApiKey:
    """The key in a colon-less token; raise `InvalidApiKey` for anything else (never echoed)."""
    if len(token) != MAX_KEY_LENGTH:
        raise InvalidApiKey
    match = _KEY.fullmatch(token)
    if match is None:
        raise InvalidApiKey
    return ApiKey(match[1], match[2])


def is_key_id(text: str) -> bool:
    """Whether `text` has the form of a key id (16 lowercase hex digits)."""
    return _ID.fullmatch(text) is not None


def hash_secret(key_id: str, secret: str) -> str:
    """SHA-256 over the id and the secret, hex: a stored hash only matches under its own id."""
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRecord:
    """What etcd holds for one key: whose it is, its hash and its times (Unix seconds)."""

    key_id: str
    username: str
    secret_hash: str = field(repr=False)
    issued_at: int
    expires_at: int | None = None
    name: str = ""
    owner: str = ""
    """`namespace/name` of the MilvusAPIKey that issued it; empty for the CLI."""
    last_used_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Fields a newer writer added, kept when this record is rewritten."""

    def expired(self, now: float) -> bool:
        """Whether the key no longer works at `now`."""
        return self.expires_at is not None and now >= self.expires_at

    def matches(self, key: ApiKey) -> bool:
        """Whether `key` is this record's key (constant-time on the hash)."""
        return key.key_id == self.key_id and hmac.compare_digest(key.secret_hash, self.secret_hash)

    def used_at(self, when: int) -> ApiKeyRecord:
        """This record with `last_used_at` moved to `when` (never backwards)."""
        return replace(self, last_used_at=max(when, self.last_used_at or 0))

    def encode(self) -> bytes:
        """The JSON stored in etcd."""
        body = {
            **self.extra,
            "username": self.username,
            "secret_sha256": self.secret_hash,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "name": self.name,
            "owner": self.owner,
            "last_used_at": self.last_used_at,
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, key_id: str, value: bytes) -> ApiKeyRecord:
        """Parse a stored record; raise `ValueError` for anything malformed."""
        body = json.loads(value)
        if not isinstance(body, dict):
            raise ValueError("an API key record must be a JSON object")
        username, digest = body.get("username"), body.get("secret_sha256")
        issued, expires, used = (
            body.get("issued_at"),
            body.get("expires_at"),
            body.get("last_used_at"),
        )
        if not (isinstance(username, str) and isinstance(digest, str) and isinstance(issued, int)):
            raise ValueError("an API key record needs username, secret_sha256 and issued_at")
        if not _USERNAME.fullmatch(username):
            # The key would act as this name: only one Milvus could have stored will do.
            raise ValueError("an API key record's username must be a valid Milvus username")
        if not all(value is None or isinstance(value, int) for value in (expires, used)):
            raise ValueError("expires_at and last_used_at must be integers or null")
        return cls(
            key_id=key_id,
            username=username,
            secret_hash=digest,
            issued_at=issued,
            expires_at=expires,
            name=str(body.get("name") or ""),
            owner=str(body.get("owner") or ""),
            last_used_at=used,
            extra={k: v for k, v in body.items() if k not in _FIELDS},
        )


def parse_duration(text: str) -> float:
    """A Go-style duration (`720h`, `1h30m`, `90s`, `1.5h`) in seconds; positive."""
    stripped = text.strip()
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    if not stripped or position != len(stripped) or total <= 0:
        raise ValueError(f"expected a positive duration such as 720h or 1h30m, got {text!r}")
    return total
