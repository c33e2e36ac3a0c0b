"""Report what one MilvusUser pass did: pure functions from its results to the status outcome.

`act.py` performs the plan and hands back what happened (`PasswordResult`, `BindingsResult`);
nothing here does I/O. `Ready` needs every proxy to have confirmed the password's cache entry
and, when `spec.roles` is set, the policy refresh after a mapping write. Messages never carry a
password, digest or hash.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from milvus_auth.operator.kube import KubeError
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.status import Outcome, Reason
from milvus_auth.operator.users.decide import Refusal, Write
from milvus_auth.operator.users.spec import UserSpec

Pushed = FanOut | KubeError | None
"""A fan-out's result: who confirmed, the proxies could not be listed, or not sent at all."""


@dataclass(frozen=True)
class PasswordResult:
    """What the writer did with the record and the proxies' cache entries."""

    version: str
    """The Secret version whose password is now applied."""
    watched: bool
    write: Write
    """NONE, CREATE or UPDATE: a VERIFY resolved by bcrypt."""
    revision: int | None
    pushed: Pushed

    @property
    def wrote(self) -> bool:
        """Whether etcd's record was written."""
        return self.write in {Write.CREATE, Write.UPDATE}

    @property
    def confirmed(self) -> bool:
        """Nothing was pushed, or every proxy confirmed: the mappings may follow."""
        return self.pushed is None or (isinstance(self.pushed, FanOut) and self.pushed.complete)


@dataclass(frozen=True)
class BindingsResult:
    """What the writer did with the user's mappings."""

    roles: tuple[str, ...]
    missing: tuple[str, ...]
    """Named roles that do not exist in Milvus (yet)."""
    refreshed: Pushed


def report_password(spec: UserSpec, result: PasswordResult) -> Outcome:
    """The outcome of the password step."""
    note = (
        ""
        if result.watched
        else (
            f"; Secret {spec.effective_secret_name} is not labelled auth.milvus.io/watch=true, "
            "so its changes apply at the next resync"
        )
    )
    pushed, version, revision = result.pushed, result.version, result.revision
    written = result.write.value if result.wrote else ""
    if pushed is None:
        return Outcome(Reason.APPLIED, f"password applied{note}", version, revision)
    if isinstance(pushed, KubeError):
        message = f"cannot list the proxies: {pushed}"
        return Outcome(
            Reason.PROXIES_PENDING,
            message,
            version,
            revision,
            applied=result.wrote,
            written=written,
        )
    if not pushed.complete:
        # A retry that only reaches the proxies again is not a new application: keeping
        # lastAppliedTime unless etcd was written spares a status patch per retry.
        message = f"{pushed.updated} of {pushed.total} proxies updated; retrying"
        return Outcome(
            Reason.PROXIES_PENDING,
            message,
            version,
            revision,
            pushed,
            applied=result.wrote,
            written=written,
        )
    message = f"password applied; {pushed.updated}/{pushed.total} proxies updated{note}"
    return Outcome(
        Reason.APPLIED, message, version, revision, pushed, applied=True, written=written
    )


def report_bindings(password: Outcome, result: BindingsResult) -> Outcome:
    """The outcome once the mappings followed an applied password."""
    refreshed = result.refreshed
    if isinstance(refreshed, KubeError):
        message = f"cannot list the proxies: {refreshed}"
        return replace(password, reason=Reason.PROXIES_PENDING, message=message)
    if refreshed is not None and not refreshed.complete:
        message = f"{refreshed.updated} of {refreshed.total} proxies refreshed roles; retrying"
        return replace(password, reason=Reason.PROXIES_PENDING, message=message, proxies=refreshed)
    if result.missing:
        message = (
            f"password applied; role {', '.join(result.missing)} does not exist in Milvus "
            "(yet): the user is not bound to it"
        )
        return replace(password, reason=Reason.ROLE_NOT_FOUND, message=message)
    shown = ", ".join(sorted(result.roles)) or "none"
    return replace(password, message=f"{password.message}; roles: {shown}")


def report_refusal(refusal: Refusal, *, unbound: bool, refreshed: Pushed) -> Outcome:
    """A refusal; when it removed elevated mappings (de-escalation), it says so and how many
    proxies refreshed."""
    if not unbound:
        return Outcome(refusal.reason, refusal.message)
    roles = ", ".join(refusal.unbind)
    message = f"{refusal.message}; removed the user's mapping to {roles}"
    if isinstance(refreshed, KubeError):
        return Outcome(refusal.reason, f"{message}; cannot list the proxies: {refreshed}")
    return Outcome(refusal.reason, message, proxies=refreshed)
