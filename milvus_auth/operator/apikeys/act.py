"""Act on a MilvusAPIKey's plan: one writer for its key records and its Secret, then the
proxies' `InvalidateApiKeyCache`.

Nothing is issued before every check passed: an invalid spec, a refused username, a user that
does not exist or a Secret someone else owns leaves etcd and the Secret untouched. A resource
refused its username also loses the keys it issued before (least privilege: a user may have
been bound to an elevated role since). The record is written before the Secret, so a key in a
Secret always works; a record whose Secret write failed is never current and ends like a
previous key. Only the key id and times are ever logged or reported, never the key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from milvus_auth.core.apikeys import ApiKeyRecord, generate_api_key
from milvus_auth.operator.apikeys.decide import (
    KeyPlan,
    check_spec,
    key_privileges,
    new_record,
    plan_keys,
    retired,
    secret_conflict,
    to_invalidate,
)
from milvus_auth.operator.apikeys.report import KeyState, key_outcome, timestamp
from milvus_auth.operator.apikeys.secret import secret_path, secret_view, write_secret
from milvus_auth.operator.apikeys.spec import ApiKeySpec
from milvus_auth.operator.kube import KubeClient, KubeError
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.report import Note
from milvus_auth.operator.status import Outcome, Reason
from milvus_auth.store import (
    ApiKeyExists,
    ApiKeyStore,
    ClaimStore,
    CredentialStore,
    EtcdUnavailable,
    PolicyStore,
    RevisionConflict,
    StoredApiKey,
)

log = logging.getLogger(__name__)


class ApiKeyNotifier(Protocol):
    """What API key reconciles need from the proxy fan-out; tests may substitute their own."""

    async def invalidate_api_keys(self, key_ids: Sequence[str]) -> FanOut:
        """Drop these keys from every proxy's cache."""
        ...


@dataclass(frozen=True)
class KeyResult:
    """One pass or removal of a MilvusAPIKey: outcome, key fields of the status, Events."""

    outcome: Outcome
    fields: dict[str, Any] | None = None
    """The status's key fields (`report.KeyState.fields`); None keeps the previous ones."""
    notes: tuple[Note, ...] = ()
    done: bool = True
    """For a removal: False means retry before dropping the finalizer."""


class ApiKeyReconciler:
    """Issues, rotates, retires and revokes one MilvusAPIKey's keys and tells every proxy."""

    def __init__(
        self,
        *,
        keys: ApiKeyStore,
        users: CredentialStore,
        claims: ClaimStore,
        policy: PolicyStore,
        kube: KubeClient,
        notifier: ApiKeyNotifier,
        metrics: OperatorMetrics,
        permissions: Permissions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.users = users
        self.claims = claims
        self.policy = policy
        self.kube = kube
        self.notifier = notifier
        self.metrics = metrics
        self.permissions = permissions
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Keys removed by a deletion whose fan-out is not confirmed yet, per resource uid: the
        # records are gone, so a retry could not find their ids in etcd.
        self._revoked: dict[str, set[str]] = {}

    async def reconcile(self, spec: ApiKeySpec, *, ready: bool) -> KeyResult:
        """One pass. `ready`: the status shows every proxy confirmed the current keys."""
        async with self._locks[spec.owner]:
            try:
                result = await self._reconcile(spec, ready=ready)
            except EtcdUnavailable as error:
                result = KeyResult(Outcome(Reason.ETCD_UNAVAILABLE, f"{error}; retrying"))
            except (RevisionConflict, ApiKeyExists):
                message = "a key record changed while writing; retrying"
                result = KeyResult(Outcome(Reason.RECORD_CHANGED, message))
            except KubeError as error:
                result = KeyResult(Outcome(Reason.KUBERNETES_UNAVAILABLE, f"{error}; retrying"))
        self.metrics.reconciles.labels(result.outcome.reason.value).inc()
        return result

    async def _reconcile(self, spec: ApiKeySpec, *, ready: bool) -> KeyResult:
        invalid = check_spec(spec)
        if invalid is not None:
            return KeyResult(Outcome(Reason.INVALID_SPEC, invalid))
        claim = await self.claims.get(spec.username)
        needed = key_privileges(spec, claim, await self.policy.snapshot())
        refused = self.permissions.refusal(spec.namespace, needed)
        owned = await self._owned(spec)
        if refused is not None:
            if owned:
                await self._delete(owned)
                await self._invalidate(stored.record.key_id for stored in owned)
                refused += f"; revoked the keys it had issued ({_ids(s.record for s in owned)})"
            return KeyResult(Outcome(Reason.NOT_PERMITTED, refused), KeyState(None).fields())
        if await self.users.get(spec.username) is None:
            message = f"Milvus user {spec.username} does not exist (yet); no key issued"
            return KeyResult(Outcome(Reason.USER_NOT_FOUND, message))
        secret = secret_view(await self.kube.get(secret_path(spec)), spec)
        conflict = secret_conflict(spec, secret)
        if conflict is not None:
            return KeyResult(Outcome(Reason.CONFLICT, conflict))
        now = int(self.clock())
        plan = plan_keys(spec, secret, [stored.record for stored in owned], now=now)
        state, notes = await self._apply(spec, plan, owned, secret_exists=secret.exists, now=now)
        fields, wrote = state.fields(), not plan.empty
        proxies = None
        ids = to_invalidate(plan, state.key_ids, ready=ready)
        if ids:
            try:
                proxies = await self.notifier.invalidate_api_keys(ids)
            except KubeError as error:
                message = f"cannot list the proxies: {error}; retrying"
                outcome = Outcome(Reason.PROXIES_PENDING, message, applied=wrote)
                return KeyResult(outcome, fields, tuple(notes))
        return KeyResult(key_outcome(state, proxies, now=now, wrote=wrote), fields, tuple(notes))

    async def _owned(self, spec: ApiKeySpec) -> list[StoredApiKey]:
        return [stored for stored in await self.keys.list() if stored.record.owner == spec.owner]

    async def _apply(
        self,
        spec: ApiKeySpec,
        plan: KeyPlan,
        owned: Sequence[StoredApiKey],
        *,
        secret_exists: bool,
        now: int,
    ) -> tuple[KeyState, list[Note]]:
        notes: list[Note] = []
        current = plan.current
        if plan.issue is not None:
            key = generate_api_key()
            current = new_record(spec, key, now=now)
            await self.keys.create(current)
            self.metrics.etcd_writes.labels("issue_key").inc()
            await write_secret(
                self.kube, spec, key, expires_at=current.expires_at, exists=secret_exists
            )
            log.info("issued API key %s for %s (%s)", key.key_id, spec.owner, plan.issue.value)
            message = f"issued key {key.key_id} for Milvus user {spec.username}: {plan.issue.value}"
            notes.append(Note("Normal", "Issued", message))
        by_id = {stored.record.key_id: stored for stored in owned}
        retiring = [retired(record, spec, now=now) for record in plan.retire]
        for record in retiring:
            await self.keys.update(by_id[record.key_id], record)
            self.metrics.etcd_writes.labels("retire_key").inc()
        if retiring:
            ends = timestamp(max(r.expires_at or now for r in retiring))
            message = f"previous key {_ids(retiring)} keeps working until {ends}"
            notes.append(Note("Normal", "Retiring", message))
        await self._delete(by_id[record.key_id] for record in plan.remove)
        if plan.remove:
            notes.append(Note("Normal", "Removed", f"removed key {_ids(plan.remove)}"))
        gone = {record.key_id for record in (*plan.remove, *retiring)}
        kept = [s.record for s in owned if s.record.key_id not in gone]
        previous = [r for r in kept if current is None or r.key_id != current.key_id]
        state = KeyState(current, (*retiring, *previous), spec.rotate_every)
        return state, notes

    async def _delete(self, stored: Iterable[StoredApiKey]) -> None:
        for item in stored:
            if await self.keys.delete(item.record.key_id):
                self.metrics.etcd_writes.labels("remove_key").inc()
                log.info("removed API key %s of %s", item.record.key_id, item.record.owner)

    async def _invalidate(self, key_ids: Iterable[str]) -> FanOut | None:
        try:
            return await self.notifier.invalidate_api_keys(sorted(set(key_ids)))
        except KubeError as error:
            log.warning("cannot list the proxies: %s", error)
            return None

    async def remove(self, spec: ApiKeySpec, *, give_up: bool = False) -> KeyResult:
        """Revoke every key of the resource when it goes: records first, then every proxy
        drops them; `done` once every proxy confirmed or `give_up` says to stop waiting.
        Raises EtcdUnavailable."""
        async with self._locks[spec.owner]:
            owned = await self._owned(spec)
            await self._delete(owned)
            revoked = self._revoked.setdefault(spec.uid, set())
            revoked.update(stored.record.key_id for stored in owned)
            proxies = await self._invalidate(revoked) if revoked else FanOut(0, 0)
            complete = proxies is not None and proxies.complete
            if not complete and not give_up:
                message = "keys revoked; waiting for every proxy to drop them"
                outcome = Outcome(Reason.PROXIES_PENDING, message, proxies=proxies)
                return KeyResult(outcome, done=False)
        self._locks.pop(spec.owner, None)
        ids = sorted(self._revoked.pop(spec.uid, set()))
        message = f"revoked key {', '.join(ids)}" if ids else "no key to revoke"
        outcome = Outcome(Reason.APPLIED, message, proxies=proxies)
        return KeyResult(outcome, notes=(Note("Normal", "Revoked", message),))


def _ids(records: Iterable[ApiKeyRecord]) -> str:
    """`a, b`: the records' key ids, for messages."""
    return ", ".join(sorted(record.key_id for record in records))
