"""What the privilege check decided for the current call, kept for the access log.

The check notes its decision in a contextvar: grpc.aio runs each call's checks and handler in
one task, so the access log around them reads the decision of that call and of no other.
"""

from __future__ import annotations

import contextvars
import enum


class Decision(enum.Enum):
    """The privilege check's answer for one call."""

    ALLOWED = "allowed"
    """The caller's roles grant the privilege."""
    BYPASS = "bypass"
    """Root or a super user: not checked, as in Milvus."""
    DENIED = "denied"
    """Refused with PERMISSION_DENIED."""


_NOTED: contextvars.ContextVar[Decision | None] = contextvars.ContextVar(
    "milvus_auth_privilege_decision", default=None
)


def note_decision(decision: Decision) -> None:
    """Record the current call's decision (called by the privilege check)."""
    _NOTED.set(decision)


def noted_decision() -> Decision | None:
    """The current call's decision; None when no privilege check ran."""
    return _NOTED.get()
