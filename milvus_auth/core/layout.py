"""Where credential records live in etcd and how their JSON looks, per layout.

`milvus` is what stock Milvus 2.1-2.6 reads and writes; `mep27` is the layout of the original
design text (MEP 27), which never shipped, offered for deployments that chose it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from milvus_auth.core.errors import MalformedRecord

DEFAULT_META_ROOT = "by-dev/meta"


class LayoutName(StrEnum):
    """The supported key layouts."""

    MILVUS = "milvus"
    MEP27 = "mep27"


@dataclass(frozen=True)
class CredentialRecord:
    """One user's stored credential; `extra` keeps fields this version does not interpret."""

    username: str
    encrypted_password: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_password(self, encrypted_password: str) -> CredentialRecord:
        """The same record (unknown fields kept) with a new hash."""
        return CredentialRecord(self.username, encrypted_password, self.extra)

    def __repr__(self) -> str:
        # The hash is a secret: keep it out of logs, tracebacks and test output.
        return f"CredentialRecord(username={self.username!r}, extra_fields={sorted(self.extra)})"


@dataclass(frozen=True)
class KeyLayout:
    """Key names and value encoding of one layout under one meta root."""

    name: LayoutName = LayoutName.MILVUS
    meta_root: str = DEFAULT_META_ROOT

    @property
    def users_prefix(self) -> str:
        """The prefix under which every user's key lives, ending in `/`."""
        root = self.meta_root.strip("/")
        if self.name is LayoutName.MILVUS:
            return f"{root}/root-coord/credential/users/"
        return f"{root}/credentials/users/"

    @property
    def role_mappings_prefix(self) -> str:
        """Prefix of Milvus's user-role mapping keys (`<prefix><user>/<role>`); milvus only."""
        return f"{self.meta_root.strip('/')}/root-coord/credential/user-role-mapping/"

    @property
    def password_field(self) -> str:
        """The JSON field holding the bcrypt hash."""
        return "encrypted_password" if self.name is LayoutName.MILVUS else "password"

    def key_for(self, username: str) -> str:
        """The etcd key of one user's record."""
        return self.users_prefix + username

    def username_of(self, key: str) -> str:
        """The username encoded in a key under `users_prefix`."""
        if not key.startswith(self.users_prefix):
            raise ValueError(f"key {key} is not under {self.users_prefix}")
        return key[len(self.users_prefix) :]

    def encode(self, record: CredentialRecord) -> bytes:
        """The record as Go's json.Marshal writes it: compact, hash first, extras after."""
        value: dict[str, Any] = {self.password_field: record.encrypted_password}
        value.update((k, v) for k, v in record.extra.items() if k != self.password_field)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, key: str, raw: bytes) -> CredentialRecord:
        """Parse a stored value; unknown fields (2.6's `time_tick`, `description`) are kept."""
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedRecord(key) from error
        if not isinstance(value, dict):
            raise MalformedRecord(key)
        encrypted = value.pop(self.password_field, None)
        if not isinstance(encrypted, str) or not encrypted:
            raise MalformedRecord(key)
        return CredentialRecord(self.username_of(key), encrypted, value)
