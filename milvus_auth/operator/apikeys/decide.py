"""Decide what a MilvusAPIKey needs: pure functions over its spec, its Secret and its records.

The key the Secret holds is current when a record of this resource matches it (hash and
username). A new key is issued when there is none, when `spec.rotation` differs from the one
the Secret was written for, or when `rotateEvery` has passed since the current key was issued;
an expired key alone is not replaced (it reports `Expired`). Every other record of the
resource is a previous key: it keeps working until `rotationGracePeriod` after it stopped
being current (its stored expiry is brought forward to that moment, so proxies refuse it by
themselves then), and is removed once expired. Records acting as another user than the spec
names are removed at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.apikeys import ApiKey, ApiKeyRecord
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.operator.apikeys.spec import ApiKeySpec
from milvus_auth.operator.permissions import Privilege
from milvus_auth.operator.resources import username_problem
from milvus_auth.operator.roles.decide import elevated_role
from milvus_auth.store.claims import Claim


@dataclass(frozen=True)
class SecretView:
    """What the key's Secret holds, as far as deciding goes."""

    exists: bool = False
    owned: bool = False
    """Its owner reference names this MilvusAPIKey (only such a Secret is ever written)."""
    rotation: str = ""
    """The `spec.rotation` it was written for (annotation)."""
    key: ApiKey | None = None
    """The key in its `token`, when that parses as one."""


class Issue(enum.Enum):
    """Why a new key is issued (value: the words for events)."""

    FIRST = "first key"
    SECRET = "the Secret did not hold a valid key of this resource"  # noqa: S105  (words)
    ROTATION = "spec.rotation changed"
    SCHEDULE = "spec.rotateEvery elapsed"


@dataclass(frozen=True)
class KeyPlan:
    """The writes one pass makes; empty when the resource is as it should be."""

    current: ApiKeyRecord | None
    """The key the Secret holds and keeps (None when one is issued, or none is valid)."""
    issue: Issue | None = None
    retire: tuple[ApiKeyRecord, ...] = ()
    """Previous keys whose expiry moves to the end of the grace period."""
    remove: tuple[ApiKeyRecord, ...] = ()
    """Keys to delete now: expired previous keys, or keys acting as another user."""

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return self.issue is None and not self.retire and not self.remove


def check_spec(spec: ApiKeySpec) -> str | None:
    """Why the spec can never work (InvalidSpec), or None."""
    if spec.problem is not None:
        return spec.problem
    return username_problem(spec.username)


def key_privileges(
    spec: ApiKeySpec, claim: Claim | None, snapshot: PolicySnapshot
) -> list[Privilege]:
    """What issuing a key for `spec.username` asks for: a user that no MilvusUser of the same
    namespace manages, or root, admin or a role holding cluster-level privileges."""
    needed = []
    if claim is None or claim.owner.partition("/")[0] != spec.namespace:
        needed.append(Privilege.KEY_FOR_UNCLAIMED)
    roles = snapshot.roles_of(spec.username)
    if spec.username == ROOT_USERNAME or any(elevated_role(role, snapshot) for role in roles):
        needed.append(Privilege.KEY_FOR_ELEVATED)
    return needed


def secret_conflict(spec: ApiKeySpec, secret: SecretView) -> str | None:
    """Why the Secret cannot be written (Conflict): it exists and is someone else's."""
    if secret.exists and not secret.owned:
        return (
            f"Secret {spec.secret_name} exists and is not owned by this MilvusAPIKey; "
            "delete or rename it"
        )
    return None


def plan_keys(
    spec: ApiKeySpec, secret: SecretView, records: Sequence[ApiKeyRecord], *, now: int
) -> KeyPlan:
    """The plan for this resource's `records` (those whose owner is `spec.owner`)."""
    current = _current(spec, secret, records)
    issue = _issue(spec, secret, current, records, now=now)
    kept = current if issue is None else None
    retire, remove = [], []
    for record in records:
        if kept is not None and record.key_id == kept.key_id:
            continue
        if record.username != spec.username or record.expired(now):
            remove.append(record)
        elif record.expires_at is None or record.expires_at > now + spec.grace:
            retire.append(record)
    return KeyPlan(kept, issue, tuple(retire), tuple(remove))


def _current(
    spec: ApiKeySpec, secret: SecretView, records: Sequence[ApiKeyRecord]
) -> ApiKeyRecord | None:
    if not secret.owned or secret.key is None:
        return None
    key = secret.key
    return next(
        (r for r in records if r.matches(key) and r.username == spec.username),
        None,
    )


def _issue(
    spec: ApiKeySpec,
    secret: SecretView,
    current: ApiKeyRecord | None,
    records: Sequence[ApiKeyRecord],
    *,
    now: int,
) -> Issue | None:
    if current is None:
        return Issue.SECRET if secret.exists or records else Issue.FIRST
    if secret.rotation != spec.rotation:
        return Issue.ROTATION
    if spec.rotate_every is not None and now >= current.issued_at + int(spec.rotate_every):
        return Issue.SCHEDULE
    return None


def to_invalidate(plan: KeyPlan, held: Iterable[str], *, ready: bool) -> list[str]:
    """Key ids every proxy must drop after this pass: previous keys whose expiry moved and
    removed keys; until every proxy confirmed (`ready`), also every key the resource `held`
    after the pass, so a retry repeats the whole push."""
    ids = {r.key_id for r in (*plan.retire, *plan.remove)}
    if not ready:
        ids.update(held)
    return sorted(ids)


def new_record(spec: ApiKeySpec, key: ApiKey, *, now: int) -> ApiKeyRecord:
    """The record of a key issued now for this resource."""
    expires = None if spec.expires_after is None else now + int(spec.expires_after)
    return ApiKeyRecord(
        key_id=key.key_id,
        username=spec.username,
        secret_hash=key.secret_hash,
        issued_at=now,
        expires_at=expires,
        name=spec.name,
        owner=spec.owner,
    )


def retired(record: ApiKeyRecord, spec: ApiKeySpec, *, now: int) -> ApiKeyRecord:
    """A previous key that works until the end of the grace period (never longer than before)."""
    end = now + int(spec.grace)
    return replace(
        record, expires_at=end if record.expires_at is None else min(record.expires_at, end)
    )
