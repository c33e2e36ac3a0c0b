"""Decide what a MilvusUser needs: pure functions over the desired and the observed state.

Nothing here does I/O: `act.py` observes etcd and the Secret, asks these, performs the plan,
and `report.py` turns what happened into the status outcome. The rules (issue 4): write the
etcd record only when the applied password version changed, the record is missing, or the
record changed behind the operator's back (its revision differs and bcrypt says the password no
longer matches: the VERIFY branch, resolved by the writer); never delete root; skip deleting
users the operator never wrote, did not create (adopted) or that another MilvusUser owns.
Setting `allowRoot`, managing a user that existed before its claim and binding admin or an
elevated role are privileges (issue 10, 12): refused outside the privileged namespaces.

A refusal writes nothing, with one exception that only ever takes power away: a user this
MilvusUser manages that still holds a mapping to a role it may no longer be bound to (the
role became elevated after the binding) loses that mapping.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.operator.permissions import Permissions, Privilege
from milvus_auth.operator.resources import DeletionPolicy, username_problem
from milvus_auth.operator.roles.decide import BindingPlan, binding_privileges, plan_bindings
from milvus_auth.operator.status import Applied, Reason
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import StoredCredential
from milvus_auth.store.claims import Claim, Origin


def check_spec(spec: UserSpec) -> str | None:
    """Why the spec can never work (InvalidSpec), or None."""
    if spec.secret_name == "":
        return "spec.passwordSecretRef.name must not be empty"
    problem = username_problem(spec.username)
    if problem is not None:
        return problem
    if spec.username == ROOT_USERNAME and not spec.allow_root:
        return "spec.username root is refused unless spec.allowRoot is true"
    return None


def needed_privileges(spec: UserSpec, *, claim: Claim | None, exists: bool) -> list[Privilege]:
    """The privileges this reconcile asks for, given the username's claim and whether a record
    exists: adopting means claiming a user that exists unclaimed, or keeping an adopted one."""
    needed = []
    if spec.allow_root:
        needed.append(Privilege.ALLOW_ROOT)
    adopting = exists if claim is None else claim.origin is Origin.ADOPTED
    if adopting and (claim is None or claim.owner == spec.owner):
        needed.append(Privilege.ADOPT_USER)
    return needed


def new_claim(spec: UserSpec, *, exists: bool) -> Claim:
    """The claim to take on a username nobody holds: adopted when its record already exists."""
    return Claim(spec.owner, Origin.ADOPTED if exists else Origin.CREATED)


class Write(enum.Enum):
    """What to do with the etcd record."""

    NONE = "none"
    CREATE = "create"
    UPDATE = "update"
    VERIFY = "verify"  # someone else wrote it: update only if bcrypt says it no longer matches


def decide_write(
    *,
    applied: Applied,
    secret_version: str,
    regenerated: bool,
    stored_revision: int | None,
) -> Write:
    """The record action for one reconcile; VERIFY is the only case that may need bcrypt."""
    if stored_revision is None:
        return Write.CREATE
    if regenerated or applied.password_version != secret_version:
        return Write.UPDATE
    if applied.record_revision != stored_revision:
        return Write.VERIFY
    return Write.NONE


def decide_notify(*, wrote: bool, applied: Applied) -> bool:
    """Push the cache digest to the proxies after a write, or until they all confirmed one."""
    return wrote or not applied.ready


class Removal(enum.Enum):
    """What deleting the resource does to the Milvus user."""

    DELETE = "delete"
    KEEP_ROOT = "root is never deleted"
    RETAIN = "deletionPolicy is Retain"
    NEVER_WRITTEN = "the operator never wrote this user"
    NOT_OWNED = "another MilvusUser owns this username"
    NOT_CLAIMED = "this MilvusUser never claimed the username"
    ADOPTED = "the user existed before the operator adopted it"


def decide_removal(spec: UserSpec, applied: Applied, *, claim: Claim | None) -> Removal:
    """Whether deleting the resource deletes the Milvus user; only DELETE touches etcd.

    Only a user this MilvusUser's claim says the operator created is deleted: the status (which
    a tenant might be able to write) alone never leads to a deletion.
    """
    if spec.username == ROOT_USERNAME:
        return Removal.KEEP_ROOT
    if spec.deletion_policy is DeletionPolicy.RETAIN:
        return Removal.RETAIN
    if claim is None:
        return Removal.NOT_CLAIMED
    if claim.owner != spec.owner:
        return Removal.NOT_OWNED
    if claim.origin is Origin.ADOPTED:
        return Removal.ADOPTED
    if applied.record_revision is None:
        return Removal.NEVER_WRITTEN
    return Removal.DELETE


@dataclass(frozen=True)
class Observed:
    """What etcd holds for the user before this pass writes anything."""

    claim: Claim | None
    stored: StoredCredential | None
    policy: PolicySnapshot | None
    """The RBAC state, read only when `spec.roles` is set."""

    @property
    def exists(self) -> bool:
        """Whether the user's record exists."""
        return self.stored is not None


@dataclass(frozen=True)
class Refusal:
    """The pass stops before claiming or writing: the status reason and its message."""

    reason: Reason
    message: str
    unbind: tuple[str, ...] = ()
    """Mappings to remove all the same: elevated roles the user holds (de-escalation only)."""


def admit(spec: UserSpec, observed: Observed, permissions: Permissions) -> Refusal | None:
    """Refuse what the resource's namespace may not ask for, then a username another
    MilvusUser holds; None lets the pass claim the username and go on."""
    needed = needed_privileges(spec, claim=observed.claim, exists=observed.exists)
    if observed.policy is not None:
        needed += binding_privileges(spec.roles, observed.policy)
    refused = permissions.refusal(spec.namespace, needed)
    if refused is not None:
        return Refusal(Reason.NOT_PERMITTED, refused, deescalation(spec, observed))
    claim = observed.claim
    if claim is not None and claim.owner != spec.owner:
        return Refusal(Reason.CONFLICT, conflict_message(spec, claim))
    return None


def deescalation(spec: UserSpec, observed: Observed) -> tuple[str, ...]:
    """The roles a refused user holds that binding would need a privilege for (admin, or a
    role that became elevated after it was bound): removed, sorted. Only from a user this
    MilvusUser's claim manages, and only when `spec.roles` (authoritative) is set: a refusal
    must never let one resource touch another's user."""
    claim = observed.claim
    if observed.policy is None or claim is None or claim.owner != spec.owner:
        return ()
    held = observed.policy.roles_of(spec.username)
    return tuple(sorted(r for r in held if binding_privileges((r,), observed.policy)))


def conflict_message(spec: UserSpec, claim: Claim) -> str:
    """The Conflict message: which resource holds the username."""
    return f"username {spec.username} is already managed by {claim.owner}"


@dataclass(frozen=True)
class UserPlan:
    """The writes of one admitted pass."""

    write: Write
    bindings: BindingPlan | None
    """None: `spec.roles` is absent and the user's mappings are left alone."""


def plan_user(
    spec: UserSpec,
    applied: Applied,
    observed: Observed,
    *,
    secret_version: str,
    regenerated: bool,
) -> UserPlan:
    """The record action and the mapping writes, from the Secret read after admission."""
    write = decide_write(
        applied=applied,
        secret_version=secret_version,
        regenerated=regenerated,
        stored_revision=None if observed.stored is None else observed.stored.mod_revision,
    )
    bindings = None
    if spec.roles is not None and observed.policy is not None:
        bindings = plan_bindings(spec.username, spec.roles, observed.policy)
    return UserPlan(write, bindings)
