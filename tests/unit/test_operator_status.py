"""Status building: kstatus conditions upserted by type, patches only when something changed."""

from __future__ import annotations

import datetime

from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.status import Outcome, Reason, build_status, status_patch

T0 = datetime.datetime(2026, 11, 22, 10, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def _conditions(status: dict[str, object]) -> dict[str, tuple[str, str]]:
    found = status["conditions"]
    assert isinstance(found, list)
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def test_ready_outcome() -> None:
    outcome = Outcome(Reason.APPLIED, "ok", "u/1", 7, FanOut(2, 2), applied=True)
    status = build_status(outcome, generation=4, previous=None, now=T0)
    assert status["observedGeneration"] == 4
    assert status["passwordVersion"] == "u/1"
    assert status["recordRevision"] == 7
    assert status["proxies"] == {"updated": 2, "total": 2, "summary": "2/2"}
    assert status["lastAppliedTime"] == "2026-11-22T10:00:00Z"
    assert _conditions(status) == {
        "Ready": ("True", "Applied"),
        "Reconciling": ("False", "Idle"),
        "Stalled": ("False", "Idle"),
    }


def test_retryable_and_stalled_outcomes() -> None:
    pending = build_status(
        Outcome(Reason.PROXIES_PENDING, "1 of 2"), generation=1, previous=None, now=T0
    )
    assert _conditions(pending)["Reconciling"] == ("True", "ProxiesPending")
    assert _conditions(pending)["Stalled"] == ("False", "Idle")
    stalled = build_status(Outcome(Reason.CONFLICT, "taken"), generation=1, previous=None, now=T0)
    assert _conditions(stalled)["Stalled"] == ("True", "Conflict")
    assert _conditions(stalled)["Reconciling"] == ("False", "Idle")
    assert _conditions(stalled)["Ready"] == ("False", "Conflict")


def test_unchanged_outcome_produces_no_patch() -> None:
    first = build_status(
        Outcome(Reason.APPLIED, "ok", "u/1", 7, FanOut(2, 2), applied=True),
        generation=1,
        previous=None,
        now=T0,
    )
    # A later resync finds nothing to do: no proxies pushed, nothing applied.
    again = build_status(
        Outcome(Reason.APPLIED, "ok", "u/1", 7), generation=1, previous=first, now=T1
    )
    assert status_patch(first, again) == {}


def test_transition_times_change_only_with_the_status() -> None:
    first = build_status(
        Outcome(Reason.SECRET_NOT_FOUND, "missing"), generation=1, previous=None, now=T0
    )
    later = build_status(
        Outcome(Reason.APPLIED, "ok", "u/1", 7), generation=1, previous=first, now=T1
    )
    times = {c["type"]: c["lastTransitionTime"] for c in later["conditions"]}
    assert times["Ready"] == "2026-11-22T10:05:00Z"
    assert times["Reconciling"] == "2026-11-22T10:05:00Z"
    assert times["Stalled"] == "2026-11-22T10:00:00Z"
    assert set(status_patch(first, later)) == {"conditions", "passwordVersion", "recordRevision"}


def test_failures_keep_what_was_applied() -> None:
    ready = build_status(
        Outcome(Reason.APPLIED, "ok", "u/1", 7, FanOut(2, 2), applied=True),
        generation=1,
        previous=None,
        now=T0,
    )
    missing = build_status(
        Outcome(Reason.SECRET_NOT_FOUND, "gone"), generation=1, previous=ready, now=T1
    )
    assert missing["passwordVersion"] == "u/1"
    assert missing["recordRevision"] == 7
    assert missing["proxies"]["summary"] == "2/2"
    assert missing["lastAppliedTime"] == ready["lastAppliedTime"]
