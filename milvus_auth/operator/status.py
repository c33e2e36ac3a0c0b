"""kstatus-style status: what a reconcile found, as conditions, and the patch that records it.

The one module that spells status fields: `Applied.from_status` reads what a resource's status
says was applied, `build_status` writes an outcome over it, for MilvusUsers and MilvusRoles
alike. kopf patches are JSON merge patches, which replace a list whole: conditions are upserted
by type here and written as one list. A patch is produced only when something changed, so an
unchanged resync writes nothing (no churn for GitOps tools). Messages never carry secrets.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from milvus_auth.operator.notify import FanOut

OBSERVED_GENERATION = "observedGeneration"
CONDITIONS = "conditions"
PASSWORD_VERSION = "passwordVersion"  # noqa: S105  (a field name, not a password)
RECORD_REVISION = "recordRevision"
ROLE_NAME = "roleName"
GRANTS = "grants"
PROXIES = "proxies"
LAST_APPLIED_TIME = "lastAppliedTime"
READY = "Ready"
RECONCILING = "Reconciling"
STALLED_CONDITION = "Stalled"


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
    USER_LIMIT_REACHED = "UserLimitReached"
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
    role_name: str | None = None
    """The Milvus role a MilvusRole manages, once it applied (kept across later outcomes)."""

    @property
    def ready(self) -> bool:
        """Everything applied and confirmed."""
        return self.reason is Reason.APPLIED

    @property
    def stalled(self) -> bool:
        """Waiting for a human, not for time."""
        return self.reason in STALLED


@dataclass(frozen=True)
class Applied:
    """What a resource's status says the operator applied (tolerant of any stored shape)."""

    password_version: str | None = None
    record_revision: int | None = None
    ready: bool = False
    reason: str | None = None
    """The Ready condition's reason."""
    observed_generation: int = 0
    role_name: str = ""

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Applied:
        """Read the fields `build_status` writes."""
        status = status or {}
        revision = status.get(RECORD_REVISION)
        generation = status.get(OBSERVED_GENERATION)
        ready = [
            c
            for c in status.get(CONDITIONS) or []
            if isinstance(c, Mapping) and c.get("type") == READY
        ]
        return cls(
            password_version=status.get(PASSWORD_VERSION) or None,
            record_revision=revision if isinstance(revision, int) else None,
            ready=bool(ready) and ready[0].get("status") == "True",
            reason=str(ready[0]["reason"]) if ready and ready[0].get("reason") else None,
            observed_generation=generation if isinstance(generation, int) else 0,
            role_name=str(status.get(ROLE_NAME) or ""),
        )


def build_status(
    outcome: Outcome, *, generation: int, previous: Mapping[str, Any] | None, now: datetime.datetime
) -> dict[str, Any]:
    """The full status after `outcome`; fields the outcome does not know are carried over."""
    previous = previous or {}
    status: dict[str, Any] = {
        OBSERVED_GENERATION: generation,
        CONDITIONS: _conditions(outcome, generation, previous.get(CONDITIONS) or [], now),
    }
    carried = {
        PASSWORD_VERSION: outcome.password_version,
        RECORD_REVISION: outcome.record_revision,
        ROLE_NAME: outcome.role_name,
    }
    for key, value in carried.items():
        if value or previous.get(key):
            status[key] = value or previous[key]
    grants = outcome.grants if outcome.grants is not None else previous.get(GRANTS)
    if grants is not None:
        status[GRANTS] = grants
    if outcome.proxies is not None:
        updated, total = outcome.proxies.updated, outcome.proxies.total
        status[PROXIES] = {"updated": updated, "total": total, "summary": f"{updated}/{total}"}
    elif previous.get(PROXIES):
        status[PROXIES] = previous[PROXIES]
    if outcome.applied:
        status[LAST_APPLIED_TIME] = _timestamp(now)
    elif previous.get(LAST_APPLIED_TIME):
        status[LAST_APPLIED_TIME] = previous[LAST_APPLIED_TIME]
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
        (READY, outcome.ready, outcome.reason.value, outcome.message),
        (RECONCILING, reconciling, outcome.reason.value if reconciling else "Idle", ""),
        (
            STALLED_CONDITION,
            outcome.stalled,
            outcome.reason.value if outcome.stalled else "Idle",
            "",
        ),
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
