"""Act on a MilvusUser's decisions: observe, claim, read the Secret, write etcd, tell proxies.

One pass: `check_spec`; observe etcd (claim, record, and the RBAC state when `spec.roles` is
set); `admit` (pure) refuses before anything is claimed or written, so a MilvusUser outside the
privileged namespaces that sets `allowRoot`, names a user that exists without a claim or binds
an elevated role leaves etcd untouched (except the de-escalating unbind of `decide.deescalation`);
then claim, read the password, `plan_user` (pure), and perform the plan here, the one writer.
`report.py` turns what happened into the outcome.

One `UserReconciler` per operator. Passes over one resource are serialised by a lock, because
kopf runs change handlers, the resync timer and deletion concurrently. bcrypt runs in a thread,
so hashing for many users uses every core and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from milvus_auth.core import (
    CredentialRecord,
    MalformedRecord,
    UserExists,
    UserLimitReached,
    cache_digest,
    hash_password,
    verify_password,
)
from milvus_auth.core.passwords import PasswordPolicy
from milvus_auth.operator.kube import KubeClient, KubeError
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut, Notifier
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.bindings import BindingWriter
from milvus_auth.operator.roles.decide import BindingPlan
from milvus_auth.operator.secrets import PasswordProblem, SecretPassword, read_password
from milvus_auth.operator.status import Applied, Outcome, Reason
from milvus_auth.operator.users.decide import (
    Observed,
    Refusal,
    Removal,
    Write,
    admit,
    check_spec,
    conflict_message,
    decide_notify,
    decide_removal,
    new_claim,
    plan_user,
)
from milvus_auth.operator.users.report import (
    BindingsResult,
    PasswordResult,
    Pushed,
    report_bindings,
    report_password,
    report_refusal,
)
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import (
    ClaimStore,
    CredentialStore,
    EtcdUnavailable,
    PolicyStore,
    RevisionConflict,
    StoredCredential,
)
from milvus_auth.store.claims import Origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemovalOutcome:
    """What deleting a MilvusUser did; `done` False means retry before dropping the finalizer."""

    removal: Removal
    done: bool
    message: str
    proxies: FanOut | None = None


class UserReconciler:
    """Brings one MilvusUser's etcd record, mappings and the proxies' caches in line with it."""

    def __init__(
        self,
        *,
        store: CredentialStore,
        claims: ClaimStore,
        kube: KubeClient,
        notifier: Notifier,
        metrics: OperatorMetrics,
        bcrypt_cost: int,
        permissions: Permissions,
        policy: PolicyStore,
        password_policy: PasswordPolicy | None = None,
        max_users: int | None = None,
    ) -> None:
        self.store = store
        self.claims = claims
        self.kube = kube
        self.notifier = notifier
        self.metrics = metrics
        self.bcrypt_cost = bcrypt_cost
        self.permissions = permissions
        self.password_policy = password_policy or PasswordPolicy()
        self.policy = policy
        self.max_users = max_users
        self.bindings = BindingWriter(policy=policy, metrics=metrics)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # What this process applied last, per resource uid. kopf hands handlers the body of the
        # event that triggered them, whose status may predate this process's own last patch;
        # trusting that stale status would re-hash and re-write for nothing.
        self._applied: dict[str, Applied] = {}

    async def reconcile(self, spec: UserSpec, applied: Applied) -> Outcome:
        """One pass; never raises for expected failures, they come back as the outcome."""
        async with self._locks[spec.owner]:
            known = self._applied.get(spec.uid, applied)
            outcome = await self._pass(spec, known)
            self._applied[spec.uid] = Applied(
                password_version=outcome.password_version or known.password_version,
                record_revision=outcome.record_revision or known.record_revision,
                ready=outcome.ready,
            )
        self.metrics.reconciles.labels(outcome.reason.value).inc()
        return outcome

    async def _pass(self, spec: UserSpec, applied: Applied) -> Outcome:
        invalid = check_spec(spec)
        if invalid is not None:
            return Outcome(Reason.INVALID_SPEC, invalid)
        try:
            return await self._admitted_pass(spec, applied)
        except UserExists:
            return await self._lost_create(spec)
        except UserLimitReached as error:
            # Not stalled: a user deleted elsewhere makes room, and the retry backs off to 30 s.
            return Outcome(Reason.USER_LIMIT_REACHED, f"{error.reason}; retrying")
        except MalformedRecord as error:
            # Stock Milvus cannot read it either; a human decides (e.g. `milvus-auth users`).
            return Outcome(Reason.INVALID_RECORD, error.reason)
        except PasswordProblem as problem:
            return Outcome(Reason(problem.reason), problem.message)
        except EtcdUnavailable as error:
            return Outcome(Reason.ETCD_UNAVAILABLE, f"{error}; retrying")
        except RevisionConflict:
            return Outcome(Reason.RECORD_CHANGED, "the record changed while writing; retrying")
        except KubeError as error:
            return Outcome(Reason.KUBERNETES_UNAVAILABLE, f"{error}; retrying")

    async def _admitted_pass(self, spec: UserSpec, applied: Applied) -> Outcome:
        observed = Observed(
            claim=await self.claims.get(spec.username),
            stored=await self.store.get(spec.username),
            policy=None if spec.roles is None else await self.policy.snapshot(),
        )
        refusal = admit(spec, observed, self.permissions)
        if refusal is not None:
            return await self._refuse(spec.username, refusal)
        if observed.claim is None:
            claim = await self.claims.claim(spec.username, new_claim(spec, exists=observed.exists))
            if claim.owner != spec.owner:  # another MilvusUser claimed it since we looked
                return Outcome(Reason.CONFLICT, conflict_message(spec, claim))
        secret = await read_password(self.kube, spec, self.password_policy)
        plan = plan_user(
            spec,
            applied,
            observed,
            secret_version=secret.version,
            regenerated=secret.regenerated,
        )
        password = await self._write_password(spec, plan.write, secret, observed.stored, applied)
        outcome = report_password(spec, password)
        if plan.bindings is None or not outcome.ready:
            return outcome
        return report_bindings(
            outcome, await self._write_bindings(spec, plan.bindings, ready=applied.ready)
        )

    async def _refuse(self, username: str, refusal: Refusal) -> Outcome:
        """Nothing is written for a refusal but the de-escalating unbind it names."""
        if not refusal.unbind:
            return report_refusal(refusal, unbound=False, refreshed=None)
        _, wrote = await self.bindings.write(username, BindingPlan(unbind=refusal.unbind))
        if wrote:
            log.warning(
                "removed the mapping of %s to %s: %s", username, ", ".join(refusal.unbind),
                refusal.message,
            )  # fmt: skip
        refreshed = await self._refresh() if wrote else None
        return report_refusal(refusal, unbound=wrote, refreshed=refreshed)

    async def _lost_create(self, spec: UserSpec) -> Outcome:
        """Someone else made the user between our read and our create: our claim's "created"
        is no longer true. Dropping it sends the next pass through the adoption rule."""
        try:
            claim = await self.claims.get(spec.username)
            if claim is not None and claim.origin is Origin.CREATED:
                await self.claims.release(spec.username, spec.owner)
        except EtcdUnavailable as error:
            return Outcome(Reason.ETCD_UNAVAILABLE, f"{error}; retrying")
        return Outcome(Reason.RECORD_CHANGED, "the record changed while writing; retrying")

    async def _write_password(
        self,
        spec: UserSpec,
        write: Write,
        secret: SecretPassword,
        stored: StoredCredential | None,
        applied: Applied,
    ) -> PasswordResult:
        """Perform the record action (VERIFY: bcrypt, then update only on a mismatch), then
        push the cache digest to the proxies when `decide_notify` says so."""
        revision = applied.record_revision
        if write is Write.VERIFY:
            assert stored is not None
            if await self._verify(secret.password, stored.record.encrypted_password):
                write, revision = Write.NONE, stored.mod_revision
            else:
                write = Write.UPDATE
        if write is Write.CREATE:
            hashed = await self._hash(secret.password)
            record = CredentialRecord(spec.username, hashed)
            revision = await self.store.create(record, max_users=self.max_users)
            self.metrics.etcd_writes.labels("create").inc()
        elif write is Write.UPDATE:
            assert stored is not None
            hashed = await self._hash(secret.password)
            record = stored.record.with_password(hashed)
            revision = await self.store.update(record, expected_revision=stored.mod_revision)
            self.metrics.etcd_writes.labels("update").inc()
        wrote = write in {Write.CREATE, Write.UPDATE}
        if wrote:
            log.info(
                "wrote the record of %s (%s) at revision %s", spec.username, write.value, revision
            )
        pushed: Pushed = None
        if decide_notify(wrote=wrote, applied=applied):
            digest = cache_digest(spec.username, secret.password)
            try:
                pushed = await self.notifier.update(spec.username, digest, revision=revision)
            except KubeError as error:
                pushed = error
        return PasswordResult(secret.version, secret.watched, write, revision, pushed)

    async def _write_bindings(
        self, spec: UserSpec, plan: BindingPlan, *, ready: bool
    ) -> BindingsResult:
        """Make the mappings equal to `spec.roles`; the proxies refresh after a write, or
        until they all confirmed (`ready` from the status)."""
        missing, wrote = await self.bindings.write(spec.username, plan)
        refreshed = await self._refresh() if wrote or not ready else None
        return BindingsResult(spec.roles or (), missing, refreshed)

    async def _refresh(self) -> Pushed:
        try:
            return await self.notifier.refresh_policy()
        except KubeError as error:
            return error

    async def _hash(self, password: str) -> str:
        with self.metrics.bcrypt("hash"):
            return await asyncio.to_thread(hash_password, password, self.bcrypt_cost)

    async def _verify(self, password: str, hashed: str) -> bool:
        with self.metrics.bcrypt("verify"):
            return await asyncio.to_thread(verify_password, password, hashed)

    async def remove(
        self, spec: UserSpec, applied: Applied, *, give_up: bool = False
    ) -> RemovalOutcome:
        """Delete (or keep) the Milvus user when its MilvusUser goes; raises EtcdUnavailable.

        The claim is released once every proxy dropped the user, or when `give_up` (the
        finalizer's last try) says to stop waiting for them: until then a retry still sees its
        own claim and decides the same removal again.
        """
        async with self._locks[spec.owner]:
            applied = self._applied.get(spec.uid, applied)
            claim = await self.claims.get(spec.username) if spec.username else None
            removal = decide_removal(spec, applied, claim=claim)
            if removal in {Removal.NOT_OWNED, Removal.NOT_CLAIMED}:
                return RemovalOutcome(removal, done=True, message=removal.value)
            if removal is Removal.DELETE and await self.store.delete(spec.username):
                self.metrics.etcd_writes.labels("delete").inc()
                log.info("deleted the record of %s", spec.username)
            outcome = RemovalOutcome(removal, done=True, message=removal.value)
            if removal is Removal.DELETE:
                outcome = await self._invalidate(removal, spec.username)
            if not outcome.done and not give_up:
                return outcome
            await self.claims.release(spec.username, spec.owner)
        self._locks.pop(spec.owner, None)
        self._applied.pop(spec.uid, None)
        self.metrics.reconciles.labels("Deleted" if removal is Removal.DELETE else "Retained").inc()
        return outcome

    async def _invalidate(self, removal: Removal, username: str) -> RemovalOutcome:
        try:
            proxies = await self.notifier.invalidate(username)
        except KubeError as error:
            return RemovalOutcome(removal, done=False, message=f"cannot list proxies: {error}")
        if not proxies.complete:
            message = f"{proxies.updated} of {proxies.total} proxies invalidated"
            return RemovalOutcome(removal, done=False, message=message, proxies=proxies)
        return RemovalOutcome(removal, done=True, message=removal.value, proxies=proxies)
