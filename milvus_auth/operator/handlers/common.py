"""What the kopf handlers of every kind share: retry delays and recording an outcome (in
kopf's patch).

Part of the `handlers` package, the only place that imports kopf.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import kopf

from milvus_auth.operator.status import Applied, Outcome, Reason, build_status, status_patch

MAX_DELAY = 30.0
# First retry delay per reason; it doubles on each retry up to MAX_DELAY.
_BASE_DELAY = {
    Reason.PROXIES_PENDING: 0.5,
    Reason.RECORD_CHANGED: 0.2,
    Reason.ETCD_UNAVAILABLE: 1.0,
    Reason.SECRET_NOT_FOUND: 1.0,
    Reason.KUBERNETES_UNAVAILABLE: 2.0,
    Reason.ROLE_NOT_FOUND: 2.0,
}
REMOVAL_RETRIES = 5  # then the finalizer goes anyway: proxies also watch etcd for deletions


def backoff(reason: Reason, retry: int) -> float:
    """Seconds before retry number `retry` (0-based) of a reconcile that ended with `reason`."""
    return float(min(_BASE_DELAY.get(reason, 1.0) * 2**retry, MAX_DELAY))


Extend = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
"""(status, previous status) -> status with a kind's own fields."""


def record(
    body: kopf.Body, patch: kopf.Patch, outcome: Outcome, extend: Extend | None = None
) -> None:
    """Patch the status fields that changed and post the Events the outcome deserves."""
    for key, value in _changes(body, outcome, extend).items():
        patch.status[key] = value
    _post_event(body, outcome, dict(body.get("status") or {}))


def _changes(body: kopf.Body, outcome: Outcome, extend: Extend | None = None) -> dict[str, Any]:
    previous = dict(body.get("status") or {})
    generation = int(body.metadata.get("generation") or 0)
    now = datetime.datetime.now(datetime.UTC)
    status = build_status(outcome, generation=generation, previous=previous, now=now)
    if extend is not None:
        status = extend(status, previous)
    return status_patch(previous, status)


def _post_event(body: kopf.Body, outcome: Outcome, previous: dict[str, Any]) -> None:
    """Created/Updated when a record was written; a Warning when the Ready reason turns bad."""
    if outcome.written == "create":
        kopf.event(body, type="Normal", reason="Created", message=outcome.message)
    elif outcome.written == "update":
        kopf.event(body, type="Normal", reason="Updated", message=outcome.message)
    if not outcome.ready and Applied.from_status(previous).reason != outcome.reason.value:
        kopf.event(body, type="Warning", reason=outcome.reason.value, message=outcome.message)
