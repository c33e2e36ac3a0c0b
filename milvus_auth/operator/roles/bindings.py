"""The one writer of a MilvusUser's role mappings: performs a `BindingPlan` through etcd.

`spec.roles` is authoritative when set (mappings not listed are removed) and ignored when
absent; what to bind and unbind is decided in `roles.decide.plan_bindings`. A role dropped
between the plan's snapshot and the write is reported as missing (bind) or skipped (unbind):
the next pass plans again.
"""

from __future__ import annotations

from milvus_auth.core.errors import RoleNotFound
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.roles.decide import BindingPlan
from milvus_auth.store import PolicyStore


class BindingWriter:
    """Writes one user's mappings, counting every etcd write."""

    def __init__(self, *, policy: PolicyStore, metrics: OperatorMetrics) -> None:
        self.policy = policy
        self.metrics = metrics

    async def write(self, username: str, plan: BindingPlan) -> tuple[tuple[str, ...], bool]:
        """Bind and unbind as planned; returns the roles missing in Milvus (sorted) and
        whether anything was written."""
        missing, wrote = list(plan.missing), False
        for role in plan.bind:
            try:
                await self.policy.bind(username, role)
            except RoleNotFound:
                missing.append(role)  # dropped since the snapshot
                continue
            self.metrics.etcd_writes.labels("bind").inc()
            wrote = True
        for role in plan.unbind:
            try:
                unbound = await self.policy.unbind(username, role)
            except RoleNotFound:
                continue  # dropped with its mappings since the snapshot
            if unbound:
                self.metrics.etcd_writes.labels("unbind").inc()
                wrote = True
        return tuple(sorted(missing)), wrote
