"""The credential store on etcd: the only package that imports the etcd client."""

from milvus_auth.store.claims import ClaimStore
from milvus_auth.store.credentials import CredentialStore, StoredCredential
from milvus_auth.store.errors import EtcdUnavailable, RevisionConflict, StoreError
from milvus_auth.store.settings import Endpoint, EtcdSettings
from milvus_auth.store.watch import (
    UserChanged,
    UserDeleted,
    WatchEvent,
    WatchLost,
    WatchRestored,
    watch_users,
)

__all__ = [
    "ClaimStore",
    "CredentialStore",
    "Endpoint",
    "EtcdSettings",
    "EtcdUnavailable",
    "RevisionConflict",
    "StoreError",
    "StoredCredential",
    "UserChanged",
    "UserDeleted",
    "WatchEvent",
    "WatchLost",
    "WatchRestored",
    "watch_users",
]
