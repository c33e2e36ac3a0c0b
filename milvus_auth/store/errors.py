"""The store's error family: etcd unreachable versus a lost compare-and-swap."""

from __future__ import annotations


class StoreError(Exception):
    """Any failure of the credential store."""


class EtcdUnavailable(StoreError):
    """etcd did not answer within the timeout, refused the connection or the credentials."""


class RevisionConflict(StoreError):
    """The record changed (or vanished) since the revision the caller read."""

    def __init__(self, key: str, expected: int) -> None:
        super().__init__(f"{key} changed since revision {expected}")
        self.key = key
        self.expected = expected
