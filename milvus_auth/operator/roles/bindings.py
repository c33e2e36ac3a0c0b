"""A MilvusUser's `spec.roles`: its role mappings, written once the password is applied.

`spec.roles` is authoritative when set (mappings not listed are removed) and ignored when
absent. A role that does not exist yet is reported as `RoleNotFound`, naming it, while the
password and the other mappings still apply; the user becomes Ready when the role appears.
"""

from __future__ import annotations

from dataclasses import replace

from milvus_auth.core.errors import RoleNotFound
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.operator.kube import KubeError
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import Notifier
from milvus_auth.operator.permissions import Privilege
from milvus_auth.operator.roles.decide import binding_privileges, plan_bindings
from milvus_auth.operator.status import Outcome, Reason
from milvus_auth.store import PolicyStore


class BindingWriter:
    """Reads the policy snapshot for the permission check, and writes one user's mappings."""

    def __init__(self, *, policy: PolicyStore, notifier: Notifier, metrics: OperatorMetrics):
        self.policy = policy
        self.notifier = notifier
        self.metrics = metrics

    async def privileges(self, roles: tuple[str, ...] | None) -> list[Privilege]:
        """What binding `roles` asks for, judged on what the roles hold in etcd now."""
        if roles is None:
            return []
        return binding_privileges(roles, await self.policy.snapshot())

    async def apply(
        self, username: str, roles: tuple[str, ...] | None, *, password: Outcome, ready: bool
    ) -> Outcome:
        """Make the user's mappings equal to `roles` after `password` applied; the proxies
        refresh after a write, or until they all confirmed (`ready` from the status)."""
        if roles is None or not password.ready:
            return password
        snapshot = await self.policy.snapshot()
        missing, wrote = await self._write(username, roles, snapshot)
        if wrote or not ready:
            try:
                proxies = await self.notifier.refresh_policy()
            except KubeError as error:
                message = f"cannot list the proxies: {error}"
                return replace(password, reason=Reason.PROXIES_PENDING, message=message)
            if not proxies.complete:
                message = f"{proxies.updated} of {proxies.total} proxies refreshed roles; retrying"
                return replace(
                    password, reason=Reason.PROXIES_PENDING, message=message, proxies=proxies
                )
        if missing:
            message = (
                f"password applied; role {', '.join(missing)} does not exist in Milvus "
                "(yet): the user is not bound to it"
            )
            return replace(password, reason=Reason.ROLE_NOT_FOUND, message=message)
        shown = ", ".join(sorted(roles)) or "none"
        return replace(password, message=f"{password.message}; roles: {shown}")

    async def _write(
        self, username: str, roles: tuple[str, ...], snapshot: PolicySnapshot
    ) -> tuple[list[str], bool]:
        plan = plan_bindings(username, roles, snapshot)
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
        return sorted(missing), wrote
