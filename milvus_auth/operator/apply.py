"""Act on the decisions of `reconcile.py`: claim, read the Secret, write etcd, notify proxies.

Nothing is claimed or written before the permission check: a MilvusUser outside the
privileged namespaces that sets `allowRoot` or names a user that exists without a claim leaves
etcd untouched.

One `Reconciler` per operator. Reconciles of one resource are serialised by a lock, because
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
from milvus_auth.operator.reconcile import (
    Applied,
    Removal,
    UserSpec,
    Write,
    check_spec,
    decide_notify,
    decide_removal,
    decide_write,
    needed_privileges,
    new_claim,
)
from milvus_auth.operator.roles.bindings import BindingWriter
from milvus_auth.operator.secrets import PasswordProblem, SecretPassword, read_password
from milvus_auth.operator.status import Outcome, Reason
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


class Reconciler:
    """Brings one MilvusUser's etcd record and the proxies' caches in line with its Secret."""

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
        self.max_users = max_users
        self.bindings = BindingWriter(policy=policy, notifier=notifier, metrics=metrics)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # What this process applied last, per resource uid. kopf hands handlers the body of the
        # event that triggered them, whose status may predate this process's own last patch;
        # trusting that stale status would re-hash and re-write for nothing.
        self._applied: dict[str, Applied] = {}

    async def reconcile(self, spec: UserSpec, applied: Applied) -> Outcome:
        """One pass; never raises for expected failures, they come back as the outcome."""
        async with self._locks[spec.owner]:
            known = self._applied.get(spec.uid, applied)
            outcome = await self._reconcile(spec, known)
            self._applied[spec.uid] = Applied(
                password_version=outcome.password_version or known.password_version,
                record_revision=outcome.record_revision or known.record_revision,
                ready=outcome.ready,
            )
        self.metrics.reconciles.labels(outcome.reason.value).inc()
        return outcome

    async def _reconcile(self, spec: UserSpec, applied: Applied) -> Outcome:
        invalid = check_spec(spec)
        if invalid is not None:
            return Outcome(Reason.INVALID_SPEC, invalid)
        try:
            claim = await self.claims.get(spec.username)
            stored = await self.store.get(spec.username)
            exists = stored is not None
            needed = needed_privileges(spec, claim=claim, exists=exists)
            needed += await self.bindings.privileges(spec.roles)
            refused = self.permissions.refusal(spec.namespace, needed)
            if refused is not None:
                return Outcome(Reason.NOT_PERMITTED, refused)
            if claim is None:
                claim = await self.claims.claim(spec.username, new_claim(spec, exists=exists))
            if claim.owner != spec.owner:
                return Outcome(
                    Reason.CONFLICT, f"username {spec.username} is already managed by {claim.owner}"
                )
            secret = await read_password(self.kube, spec, self.password_policy)
            password = await self._apply(spec, applied, secret, stored)
            return await self.bindings.apply(
                spec.username, spec.roles, password=password, ready=applied.ready
            )
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

    async def _apply(
        self,
        spec: UserSpec,
        applied: Applied,
        secret: SecretPassword,
        stored: StoredCredential | None,
    ) -> Outcome:
        write = decide_write(
            applied=applied,
            secret_version=secret.version,
            regenerated=secret.regenerated,
            stored_revision=None if stored is None else stored.mod_revision,
        )
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
        written = write.value if wrote else ""
        if wrote:
            log.info(
                "wrote the record of %s (%s) at revision %s", spec.username, write.value, revision
            )
        note = (
            ""
            if secret.watched
            else (
                f"; Secret {spec.effective_secret_name} is not labelled auth.milvus.io/watch=true, "
                "so its changes apply at the next resync"
            )
        )
        if not decide_notify(wrote=wrote, applied=applied):
            return Outcome(Reason.APPLIED, f"password applied{note}", secret.version, revision)
        try:
            proxies = await self.notifier.update(
                spec.username, cache_digest(spec.username, secret.password), revision=revision
            )
        except KubeError as error:
            return Outcome(
                Reason.PROXIES_PENDING,
                f"cannot list the proxies: {error}",
                secret.version,
                revision,
                applied=wrote,
                written=written,
            )
        if not proxies.complete:
            message = f"{proxies.updated} of {proxies.total} proxies updated; retrying"
            # A retry that only reaches the proxies again is not a new application: keeping
            # lastAppliedTime unless etcd was written spares a status patch per retry.
            return Outcome(
                Reason.PROXIES_PENDING,
                message,
                secret.version,
                revision,
                proxies,
                applied=wrote,
                written=written,
            )
        message = f"password applied; {proxies.updated}/{proxies.total} proxies updated{note}"
        return Outcome(
            Reason.APPLIED,
            message,
            secret.version,
            revision,
            proxies,
            applied=True,
            written=written,
        )

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
