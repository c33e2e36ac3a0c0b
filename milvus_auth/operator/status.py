"""kstatus-style status: what a reconcile found, as conditions, and the patch that records it.

kopf patches are JSON merge patches, which replace a list whole: conditions are upserted by
type here and written as one list. A patch is produced only when something changed, so an
unchanged resync writes nothing (no churn for GitOps tools). Messages never carry secrets.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from milvus_auth.operator.notify import FanOut


class Reason(enum.StrEnum):
    """Why a MilvusUser, MilvusRole or MilvusAPIKey is (not) Ready; the Ready condition's reason."""

    APPLIED = "Applied"
    PROXIES_PENDING = "ProxiesPending"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105  (a reason, not a password)
    INVALID_SECRET = "InvalidSecret"  # noqa: S105  (a reason, not a password)
    WEAK_PASSWORD = "WeakPassword"  # noqa: S105  (a reason, not a password)
    INVALID_SPEC = "InvalidSpec"
    CONFLICT = "Conflict"
    NOT_PERMITTED = "NotPermitted"
    ETCD_UNAVAILABLE = "EtcdUnavailable"
    RECORD_CHANGED = "RecordChanged"
    ROLE_NOT_FOUND = "RoleNotFound"
    INVALID_RECORD = "InvalidRecord"
    KUBERNETES_UNAVAILABLE = "KubernetesUnavailable"
    USER_NOT_FOUND = "UserNotFound"
    EXPIRED = "Expired"


# Reasons that need a human: the operator stops retrying (until the spec or Secret changes).
STALLED = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.INVALID_SECRET,
        Reason.WEAK_PASSWORD,
        Reason.CONFLICT,
        Reason.NOT_PERMITTED,
        Reason.INVALID_RECORD,
        Reason.EXPIRED,  # a new key needs spec.rotation changed (or rotateEvery)
    }
)


@dataclass(frozen=True)
class Outcome:
    """The result of one reconcile, everything the status needs."""

    reason: Reason
    message: str
    password_version: str | None = None
    record_revision: int | None = None
    proxies: FanOut | None = None
    applied: bool = False
    """True when this reconcile wrote etcd, or completed the push to every proxy (sets
    lastAppliedTime)."""
    written: str = ""
    """`create` or `update` when this reconcile wrote the etcd record, for the Event."""
    grants: int | None = None
    """A MilvusRole's privileges in etcd after this reconcile (None: not known, or a user)."""

    @property
    def ready(self) -> bool:
        """Everything applied and confirmed."""
        return self.reason is Reason.APPLIED

    @property
    def stalled(self) -> bool:
        """Waiting for a human, not for time."""
        return self.reason in STALLED


def build_status(
    outcome: Outcome, *, generation: int, previous: Mapping[str, Any] | None, now: datetime.datetime
) -> dict[str, Any]:
    """The full status after `outcome`; fields the outcome does not know are carried over."""
    previous = previous or {}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": _conditions(outcome, generation, previous.get("conditions") or [], now),
    }
    version = outcome.password_version or previous.get("passwordVersion")
    if version:
        status["passwordVersion"] = version
    revision = outcome.record_revision or previous.get("recordRevision")
    if revision:
        status["recordRevision"] = revision
    grants = outcome.grants if outcome.grants is not None else previous.get("grants")
    if grants is not None:
        status["grants"] = grants
    if outcome.proxies is not None:
        updated, total = outcome.proxies.updated, outcome.proxies.total
        status["proxies"] = {"updated": updated, "total": total, "summary": f"{updated}/{total}"}
    elif previous.get("proxies"):
        status["proxies"] = previous["proxies"]
    if outcome.applied:
        status["lastAppliedTime"] = _timestamp(now)
    elif previous.get("lastAppliedTime"):
        status["lastAppliedTime"] = previous["lastAppliedTime"]
    return status


def status_patch(previous: Mapping[str, Any] | None, status: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields that differ; empty when nothing changed."""
    previous = previous or {}
    return {key: value for key, value in status.items() if previous.get(key) != value}


def _conditions(
    outcome: Outcome, generation: int, previous: list[Any], now: datetime.datetime
) -> list[dict[str, Any]]:
    reconciling = not outcome.ready and not outcome.stalled
    wanted = [
        ("Ready", outcome.ready, outcome.reason.value, outcome.message),
        ("Reconciling", reconciling, outcome.reason.value if reconciling else "Idle", ""),
        ("Stalled", outcome.stalled, outcome.reason.value if outcome.stalled else "Idle", ""),
    ]
    before = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    result = []
    for kind, state, reason, message in wanted:
        value = "True" if state else "False"
        old = before.get(kind) or {}
        changed = old.get("status") != value
        result.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message or (outcome.message if state else ""),
                "observedGeneration": generation,
                "lastTransitionTime": _timestamp(now)
                if changed or not old.get("lastTransitionTime")
                else old["lastTransitionTime"],
            }
        )
    return result


def _timestamp(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
