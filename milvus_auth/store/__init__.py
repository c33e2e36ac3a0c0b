"""The credential store on etcd: the only package that imports the etcd client."""

from milvus_auth.store.apikeys import ApiKeyExists, ApiKeyStore, StoredApiKey
from milvus_auth.store.claims import ClaimStore
from milvus_auth.store.credentials import CredentialStore, StoredCredential
from milvus_auth.store.errors import EtcdUnavailable, RevisionConflict, StoreError
from milvus_auth.store.policy import PolicyStore
from milvus_auth.store.settings import Endpoint, EtcdSettings
from milvus_auth.store.watch import (
    KeyChanged,
    KeyRange,
    RangeEvent,
    UserChanged,
    UserDeleted,
    WatchEvent,
    WatchLost,
    WatchRestored,
    watch_api_keys,
    watch_policy,
    watch_ranges,
    watch_users,
)

__all__ = [
    "ApiKeyExists",
    "ApiKeyStore",
    "ClaimStore",
    "CredentialStore",
    "Endpoint",
    "EtcdSettings",
    "EtcdUnavailable",
    "KeyChanged",
    "KeyRange",
    "PolicyStore",
    "RangeEvent",
    "RevisionConflict",
    "StoreError",
    "StoredApiKey",
    "StoredCredential",
    "UserChanged",
    "UserDeleted",
    "WatchEvent",
    "WatchLost",
    "WatchRestored",
    "watch_api_keys",
    "watch_policy",
    "watch_ranges",
    "watch_users",
]
