"""Report a MilvusRole pass: pure functions from its plan and fan-out to Events and outcome."""

from __future__ import annotations

from dataclasses import dataclass

from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.roles.decide import RolePlan, describe
from milvus_auth.operator.status import Outcome, Reason


@dataclass(frozen=True)
class Note:
    """An Event the handlers post: type, reason, message."""

    type: str
    reason: str
    message: str


def report_changes(plan: RolePlan, role: str, *, drift: bool) -> list[Note]:
    """Events naming every grant and revoke; writes to an already applied spec are drift
    someone made by hand, repaired, and said so as a Warning."""
    changes = []
    if plan.grant:
        changes.append("granted " + "; ".join(describe(grant) for grant in plan.grant))
    if plan.revoke:
        changes.append("revoked " + "; ".join(describe(grant) for grant in plan.revoke))
    if plan.create:
        message = f"created Milvus role {role}" + "".join(f"; {c}" for c in changes)
        return [Note("Normal", "Created", message)]
    if changes and drift:
        message = f"role {role} differed from the spec: {'; '.join(changes)}"
        return [Note("Warning", "DriftRepaired", message)]
    return [Note("Normal", "Updated", "; ".join(changes))] if changes else []


def report_refresh(proxies: FanOut | None, *, wanted: int, wrote: bool) -> Outcome:
    if proxies is None:
        message = "cannot list the proxies; retrying"
        return Outcome(Reason.PROXIES_PENDING, message, grants=wanted, applied=wrote)
    if not proxies.complete:
        message = f"{proxies.updated} of {proxies.total} proxies refreshed; retrying"
        return Outcome(
            Reason.PROXIES_PENDING, message, proxies=proxies, grants=wanted, applied=wrote
        )
    # The same words as an unchanged pass (proxies are in status.proxies): no churn on resync.
    message = f"{wanted} privileges granted"
    return Outcome(Reason.APPLIED, message, proxies=proxies, grants=wanted, applied=True)
