"""Report a MilvusAPIKey pass: its outcome, its key fields in status, and when to look again.

The status key names are spelled here only. Only the public key id and times are ever shown:
never the key, its secret part or its hash. Times are RFC 3339 UTC, to the second.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from milvus_auth.core.apikeys import ApiKeyRecord
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.status import Outcome, Reason

KEY_ID = "keyId"
EXPIRES_AT = "expiresAt"
PREVIOUS_EXPIRES_AT = "previousKeyExpiresAt"
NEXT_ROTATION = "nextRotationTime"
LAST_USED = "lastUsedTime"
KEY_FIELDS = (KEY_ID, EXPIRES_AT, PREVIOUS_EXPIRES_AT, NEXT_ROTATION, LAST_USED)
_SCHEDULED = (EXPIRES_AT, PREVIOUS_EXPIRES_AT, NEXT_ROTATION)


@dataclass(frozen=True)
class KeyState:
    """The resource's keys after a pass."""

    current: ApiKeyRecord | None
    previous: tuple[ApiKeyRecord, ...] = ()
    """Keys still in their grace period."""
    rotate_every: float | None = None

    @property
    def key_ids(self) -> list[str]:
        """Every key the resource holds: the current one and those in their grace period."""
        held = [self.current] if self.current else []
        return [record.key_id for record in (*held, *self.previous)]

    def fields(self) -> dict[str, Any]:
        """The key fields of the status; None removes a field (merge patch)."""
        current = self.current
        ends = [r.expires_at for r in self.previous if r.expires_at is not None]
        rotation = None
        if current is not None and self.rotate_every is not None:
            rotation = current.issued_at + int(self.rotate_every)
        return {
            KEY_ID: current.key_id if current else None,
            EXPIRES_AT: timestamp(current.expires_at) if current else None,
            PREVIOUS_EXPIRES_AT: timestamp(max(ends)) if ends else None,
            NEXT_ROTATION: timestamp(rotation),
            LAST_USED: timestamp(current.last_used_at) if current else None,
        }


def timestamp(seconds: int | None) -> str | None:
    """RFC 3339 UTC, or None."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_outcome(state: KeyState, proxies: FanOut | None, *, now: int, wrote: bool) -> Outcome:
    """Expired, ProxiesPending or Applied, after the plan was carried out; `proxies` is None
    when no proxy had anything to drop."""
    current = state.current
    assert current is not None  # a pass that got this far holds a current key
    if proxies is not None and not proxies.complete:
        message = f"{proxies.updated} of {proxies.total} proxies dropped the changed keys; retrying"
        return Outcome(Reason.PROXIES_PENDING, message, proxies=proxies, applied=wrote)
    if current.expired(now):
        message = (
            f"key {current.key_id} expired at {timestamp(current.expires_at)}; change "
            "spec.rotation (or set spec.rotateEvery) to issue a new one"
        )
        return Outcome(Reason.EXPIRED, message, proxies=proxies, applied=wrote)
    # The same words on every pass that changes nothing: no status churn on resync.
    message = f"key {current.key_id} acts as Milvus user {current.username}"
    return Outcome(Reason.APPLIED, message, proxies=proxies, applied=wrote)


def key_status(
    base: Mapping[str, Any], previous: Mapping[str, Any], fields: Mapping[str, Any] | None
) -> dict[str, Any]:
    """`base` (conditions, proxies...) with the key fields: the pass's own when it knows them
    (None removing one the previous status had), else the previous status's."""
    status = dict(base)
    for name in KEY_FIELDS:
        value = previous.get(name) if fields is None else fields.get(name)
        if value is not None or previous.get(name) is not None:
            status[name] = value
    return status


def next_due(status: Mapping[str, Any], *, after: float) -> float | None:
    """The first scheduled time in `status` (a key expiring, a grace period ending, a
    rotation) later than `after`, as Unix seconds; None when nothing is scheduled."""
    due = [t for t in (_seconds(status.get(name)) for name in _SCHEDULED) if t is not None]
    later = [t for t in due if t > after]
    return min(later) if later else None


def _seconds(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=datetime.UTC).timestamp()
