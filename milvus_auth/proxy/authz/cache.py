"""The policy cache: what every privilege check reads, loaded before the public port serves.

It holds Milvus's proxy cache (policy rows and user → roles) and keeps it coherent three ways:

- the etcd watch over the RBAC keys (coherence.py): any change, by another proxy, a stock
  RootCoord, the CLI or a direct etcd write, triggers a full reload from one etcd snapshot;
  a check arriving while a reload is pending waits for it, so a revoke seen by the watch is
  never answered from the rows it removed;
- `RefreshPolicyInfoCache` on the internal port, ops 1-7 applied as Milvus's proxy applies them
  (`apply`; op 7 is a full reload);
- `refresh()` after this proxy wrote etcd itself (`PolicyRefresher`).

While the watch is down the cache is not trusted: every check reads a fresh snapshot (one read
shared by concurrent checks), and when etcd cannot be read either the check fails closed with
UNAVAILABLE. Decisions are memoised per (role, resource, privilege) until the policy changes,
as Milvus's result cache is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from milvus_auth.core.errors import RbacError
from milvus_auth.core.roles import CacheOp, CacheRefresh
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.proxy.authz.policy import CompiledPolicy
from milvus_auth.proxy.errors import PolicyUnavailable
from milvus_auth.store import EtcdUnavailable

log = logging.getLogger(__name__)

NOT_READY = "internal: Milvus Proxy is not ready yet. please wait"
UNAVAILABLE_MESSAGE = "policy store unavailable, please retry"
MAX_RELOADS_PER_CHECK = 3  # under a storm of changes a check fails closed instead of waiting


class SnapshotSource(Protocol):
    """Where full reloads come from (the `PolicyStore`)."""

    async def snapshot(self) -> PolicySnapshot:
        """Every role, binding, grant and group at one revision; raises `EtcdUnavailable`."""


class PolicyRefresher(Protocol):
    """What a service that writes RBAC keys calls so this proxy enforces the change at once."""

    async def refresh(self) -> None:
        """Reload the whole policy from etcd; raises `EtcdUnavailable` when it cannot."""


class PolicyCache:
    """The proxy's policy, its trust, and the memoised decisions on it."""

    def __init__(self, source: SnapshotSource) -> None:
        self._source = source
        self._policy: CompiledPolicy | None = None
        self._snapshot: PolicySnapshot | None = None
        self._decisions: dict[tuple[str, str, str], bool] = {}
        self._trusted = False
        self._wanted = 0  # changes the watch announced
        self._loaded = 0  # changes a completed reload includes
        self._pending: asyncio.Future[bool] | None = None

    @property
    def trusted(self) -> bool:
        """Whether checks may use the cached policy without reading etcd."""
        return self._trusted

    @property
    def snapshot(self) -> PolicySnapshot | None:
        """The last snapshot loaded (list filtering reads grants from it)."""
        return self._snapshot

    async def refresh(self) -> None:
        """Load a fresh snapshot from etcd (`PolicyRefresher`); raises `EtcdUnavailable`."""
        self.load(await self._source.snapshot())

    def load(self, snapshot: PolicySnapshot) -> None:
        """Replace everything with `snapshot` (op 7, a start, a watch-driven reload), unless
        a newer one is loaded already (two reloads finishing out of order)."""
        if self._snapshot is not None and snapshot.revision < self._snapshot.revision:
            return
        self._swap(CompiledPolicy.from_snapshot(snapshot))
        self._snapshot = snapshot

    def trust(self) -> None:
        """The watch runs from the loaded snapshot on: checks may use the cache."""
        self._trusted = True

    def distrust(self) -> None:
        """The watch is down: checks read etcd until it is back."""
        self._trusted = False

    def changed(self) -> None:
        """The watch saw a change: reload, and make checks wait for the reload."""
        self._wanted += 1
        self._reload_once()

    def ready(self) -> CompiledPolicy | None:
        """The policy when it may be used without waiting (trusted, nothing pending)."""
        if self._trusted and self._loaded >= self._wanted:
            return self._policy
        return None

    async def current(self) -> CompiledPolicy:
        """The policy a check may use now; `PolicyUnavailable` rather than stale data."""
        for _ in range(MAX_RELOADS_PER_CHECK):
            if self._loaded >= self._wanted and self._trusted:
                break
            # A reload already under way is joined; an untrusted cache reads etcd every time.
            if not await asyncio.shield(self._reload_once()):
                raise PolicyUnavailable(UNAVAILABLE_MESSAGE)
            if self._loaded >= self._wanted:
                break
        else:
            raise PolicyUnavailable(UNAVAILABLE_MESSAGE)
        if self._policy is None:
            raise PolicyUnavailable(NOT_READY)
        return self._policy

    def permits(self, policy: CompiledPolicy, role: str, resource: str, privilege: str) -> bool:
        """The matcher's answer, memoised while `policy` is the current one."""
        if policy is not self._policy:
            return policy.permits(role, resource, privilege)
        key = (role, resource, privilege)
        found = self._decisions.get(key)
        if found is None:
            found = self._decisions[key] = policy.permits(role, resource, privilege)
        return found

    async def apply(self, op: CacheRefresh) -> None:
        """One `RefreshPolicyInfoCache` op, as Milvus's proxy applies it; `RbacError` with
        Milvus's text for a key it cannot decode."""
        if op.op is CacheOp.REFRESH:
            await self.refresh()
            return
        policy = self._policy
        if policy is None:
            raise RbacError(NOT_READY)
        rows = set(policy.policies)
        user_roles = {user: set(roles) for user, roles in policy.user_roles.items()}
        if op.op is CacheOp.GRANT_PRIVILEGE:
            rows.update(op.policy_texts())
        elif op.op is CacheOp.REVOKE_PRIVILEGE:
            rows.difference_update(op.policy_texts())
        elif op.op in (CacheOp.ADD_USER_TO_ROLE, CacheOp.REMOVE_USER_FROM_ROLE):
            try:
                user, role = op.user_and_role()
            except RbacError:
                raise RbacError(
                    f"invalid opKey, fail to decode, op_type: {int(op.op)}, op_key: {op.key}"
                ) from None
            if op.op is CacheOp.ADD_USER_TO_ROLE:
                user_roles.setdefault(user, set()).add(role)
            elif user in user_roles:
                user_roles[user].discard(role)
        elif op.op is CacheOp.DELETE_USER:
            user_roles.pop(op.key, None)
        elif op.op is CacheOp.DROP_ROLE:
            for roles in user_roles.values():
                roles.discard(op.key)
            marker = f'"V0":"{op.key}"'
            rows = {row for row in rows if marker not in row}
        self._swap(CompiledPolicy.build(rows, user_roles))

    def _reload_once(self) -> asyncio.Future[bool]:
        """The reload under way, or a new one: whether it loaded a snapshot."""
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._reload())
        return self._pending

    async def _reload(self) -> bool:
        wanted = self._wanted
        try:
            snapshot = await self._source.snapshot()
        except EtcdUnavailable as error:
            log.warning("policy reload failed: %s", type(error).__name__)
            return False
        self.load(snapshot)
        self._loaded = max(self._loaded, wanted)
        return True

    def _swap(self, policy: CompiledPolicy) -> None:
        self._policy = policy
        self._decisions = {}
