"""Act on a MilvusRole's plan: one writer for the role's grants, then the proxies' refresh.

`decide.py` plans (pure), this module performs the plan, `report.py` turns it into the status
outcome and the Events (pure).

Nothing is claimed or written before every check passed: an invalid spec, a refused privilege
or database, or another MilvusRole holding the role name leaves etcd untouched. Writes go
through `PolicyStore`, whose compare-and-swap transactions make a concurrent writer (a proxy's
RBAC RPC, the CLI) lose a round instead of being overwritten; the next pass plans again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, replace

from milvus_auth.core.errors import RoleExists, RoleNotFound
from milvus_auth.operator.kube import KubeError
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import FanOut, Notifier
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.resources import DeletionPolicy
from milvus_auth.operator.roles.decide import (
    GRANTOR,
    InvalidRole,
    RolePlan,
    custom_groups,
    desired_grants,
    fingerprint,
    grant_databases,
    plan_role,
    role_privileges,
)
from milvus_auth.operator.roles.report import Note, report_changes, report_refresh
from milvus_auth.operator.roles.spec import RoleSpec
from milvus_auth.operator.status import Outcome, Reason
from milvus_auth.store import ClaimStore, EtcdUnavailable, PolicyStore, RevisionConflict
from milvus_auth.store.claims import Claim, Origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleResult:
    """One reconcile or removal of a MilvusRole: the status outcome and the Events to post."""

    outcome: Outcome
    notes: tuple[Note, ...] = ()
    done: bool = True
    """For a removal: False means retry before dropping the finalizer."""
    mark: str | None = None
    """Set when the role appeared, was taken over, dropped or its grants changed: the
    MilvusUsers naming it are marked with it, so they reconcile now (binding, RoleNotFound,
    or refusing a role that became elevated)."""


class RoleReconciler:
    """Makes one MilvusRole's Milvus role equal to its spec and tells every proxy."""

    def __init__(
        self,
        *,
        policy: PolicyStore,
        claims: ClaimStore,
        notifier: Notifier,
        metrics: OperatorMetrics,
        permissions: Permissions,
    ) -> None:
        self.policy = policy
        self.claims = claims
        self.notifier = notifier
        self.metrics = metrics
        self.permissions = permissions
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def reconcile(self, spec: RoleSpec, *, ready: bool, observed: int) -> RoleResult:
        """One pass. `ready`: the status shows every proxy confirmed; `observed`: the
        generation the status says was applied (equal to the spec's: any write is drift)."""
        async with self._locks[spec.owner]:
            try:
                result = await self._reconcile(spec, ready=ready, drift=observed == spec.generation)
            except InvalidRole as error:
                result = RoleResult(Outcome(Reason.INVALID_SPEC, str(error)))
            except EtcdUnavailable as error:
                result = RoleResult(Outcome(Reason.ETCD_UNAVAILABLE, f"{error}; retrying"))
            except (RevisionConflict, RoleNotFound, RoleExists):
                message = "the role changed while writing; retrying"
                result = RoleResult(Outcome(Reason.RECORD_CHANGED, message))
        self.metrics.reconciles.labels(result.outcome.reason.value).inc()
        if result.outcome.ready:  # status.roleName: the role this resource now manages
            result = replace(result, outcome=replace(result.outcome, role_name=spec.role))
        return result

    async def _reconcile(self, spec: RoleSpec, *, ready: bool, drift: bool) -> RoleResult:
        snapshot = await self.policy.snapshot()
        groups = custom_groups(snapshot)
        wanted = desired_grants(spec, groups)
        exists = spec.role in snapshot.roles
        claim = await self.claims.get(spec.role)
        needed = role_privileges(spec, groups, claim=claim, exists=exists)
        refused = self.permissions.refusal(spec.namespace, needed)
        refused = refused or self.permissions.database_refusal(
            spec.namespace, grant_databases(spec)
        )
        if refused is not None:
            return RoleResult(Outcome(Reason.NOT_PERMITTED, refused))
        notes: list[Note] = []
        taken = claim is None
        if claim is None:
            origin = Origin.ADOPTED if exists else Origin.CREATED
            claim = await self.claims.claim(spec.role, Claim(spec.owner, origin))
            if claim.owner == spec.owner and origin is Origin.ADOPTED:
                message = f"took over the existing Milvus role {spec.role}; its grants follow"
                notes.append(Note("Normal", "TakenOver", message + " the spec"))
        if claim.owner != spec.owner:
            message = f"role {spec.role} is already managed by {claim.owner}"
            return RoleResult(Outcome(Reason.CONFLICT, message))
        plan = plan_role(spec.role, wanted, snapshot)
        await self._write(plan, spec.role)
        notes += report_changes(plan, spec.role, drift=drift and exists)
        mark = None if plan.empty and not taken else f"present:{spec.uid}:{fingerprint(wanted)}"
        if plan.empty and ready:
            message = f"{len(wanted)} privileges granted"
            outcome = Outcome(Reason.APPLIED, message, grants=len(wanted))
            return RoleResult(outcome, tuple(notes), mark=mark)
        proxies = await self._refresh()
        outcome = report_refresh(proxies, wanted=len(wanted), wrote=not plan.empty)
        return RoleResult(outcome, tuple(notes), mark=mark)

    async def _write(self, plan: RolePlan, role: str) -> None:
        if plan.create:
            await self.policy.create_role(role)
            self.metrics.etcd_writes.labels("create_role").inc()
        for target, privilege in plan.grant:
            if await self.policy.grant(target, privilege, GRANTOR):
                self.metrics.etcd_writes.labels("grant").inc()
        for target, privilege in plan.revoke:
            if await self.policy.revoke(target, privilege):
                self.metrics.etcd_writes.labels("revoke").inc()
        if not plan.empty:
            log.info(
                "role %s: created=%s granted=%d revoked=%d",
                role,
                plan.create,
                len(plan.grant),
                len(plan.revoke),
            )

    async def _refresh(self) -> FanOut | None:
        try:
            return await self.notifier.refresh_policy()
        except KubeError as error:
            log.warning("cannot list the proxies: %s", error)
            return None

    async def remove(self, spec: RoleSpec, *, give_up: bool = False) -> RoleResult:
        """Drop (Delete) or keep (Retain) the role when its MilvusRole goes; raises
        EtcdUnavailable. Only the claim's owner drops anything; the claim goes last, once every
        proxy refreshed or `give_up` says to stop waiting for them."""
        async with self._locks[spec.owner]:
            claim = await self.claims.get(spec.role) if spec.role else None
            if claim is None or claim.owner != spec.owner:
                message = "this MilvusRole never managed the role; Milvus untouched"
                return RoleResult(
                    Outcome(Reason.APPLIED, message), (Note("Normal", "Retained", message),)
                )
            if spec.deletion_policy is DeletionPolicy.RETAIN:
                await self.claims.release(spec.role, spec.owner)
                message = f"kept Milvus role {spec.role}: deletionPolicy is Retain"
                return RoleResult(
                    Outcome(Reason.APPLIED, message), (Note("Normal", "Retained", message),)
                )
            try:
                await self.policy.drop_role(spec.role, force=True)
                self.metrics.etcd_writes.labels("drop_role").inc()
            except RoleNotFound:
                pass  # dropped by someone else, or by an earlier try of this removal
            proxies = await self._refresh()
            complete = proxies is not None and proxies.complete
            if not complete and not give_up:
                message = "role dropped; waiting for every proxy to refresh"
                return RoleResult(
                    Outcome(Reason.PROXIES_PENDING, message, proxies=proxies), done=False
                )
            await self.claims.release(spec.role, spec.owner)
        self._locks.pop(spec.owner, None)
        message = f"dropped Milvus role {spec.role} with its grants and user mappings"
        return RoleResult(
            Outcome(Reason.APPLIED, message, proxies=proxies),
            (Note("Normal", "Deleted", message),),
            mark=f"dropped:{spec.uid}",
        )
