"""The kopf handlers of MilvusRoles: reconcile, resync, removal, and marking the users.

When a MilvusRole creates, takes over or drops its role, or changes its grants, the
MilvusUsers naming it in `spec.roles` are marked (annotation `trigger.auth.milvus.io/role`),
so a user waiting with `RoleNotFound` becomes Ready at once, one whose role went says so, and a
tenant's user whose role became elevated loses the mapping at once (`NotPermitted`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import kopf

from milvus_auth.operator.handlers.common import REMOVAL_RETRIES, backoff, record
from milvus_auth.operator.kube import KubeError, namespaced_path
from milvus_auth.operator.resources import API_VERSION, GROUP, ROLE_PLURAL, USER_PLURAL, VERSION
from milvus_auth.operator.roles.act import RoleResult
from milvus_auth.operator.roles.spec import RoleSpec
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.operator.status import Applied, Outcome, Reason
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import EtcdUnavailable

log = logging.getLogger(__name__)
USERS = (GROUP, VERSION, USER_PLURAL)
ROLES = (GROUP, VERSION, ROLE_PLURAL)
ROLE_TRIGGER_ANNOTATION = f"trigger.{GROUP}/role"


def register_roles(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.index(*USERS, id="users_by_role", registry=registry)
    async def users_by_role(body: kopf.Body, **_: Any) -> dict[str, tuple[str, str]]:
        spec = UserSpec.from_body(body)
        return {role: (spec.namespace, spec.name) for role in spec.roles or ()}

    @kopf.on.resume(*ROLES, id="reconcile", registry=registry)
    @kopf.on.create(*ROLES, id="reconcile", registry=registry)
    @kopf.on.update(*ROLES, id="reconcile", registry=registry)
    async def reconcile_role(body: kopf.Body, patch: kopf.Patch, retry: int, **kw: Any) -> None:
        await _reconcile_role(runtime, body, patch, retry, kw["users_by_role"])

    @kopf.timer(
        *ROLES,
        id="resync",
        interval=runtime.config.resync_period,
        initial_delay=runtime.config.resync_period,
        registry=registry,
    )
    async def resync_role(body: kopf.Body, patch: kopf.Patch, **kw: Any) -> None:
        retry = int(kw.get("retry") or 0)
        await _reconcile_role(runtime, body, patch, retry, kw["users_by_role"])

    @kopf.on.delete(*ROLES, id="remove", registry=registry)
    async def remove_role(body: kopf.Body, patch: kopf.Patch, retry: int, **kw: Any) -> None:
        spec = RoleSpec.from_body(body)
        applied_role = Applied.from_status(body.get("status")).role_name
        if applied_role:
            spec = replace(spec, role=applied_role)  # the managed role, even after a rename
        try:
            result = await runtime.roles.remove(spec, give_up=retry >= REMOVAL_RETRIES)
        except EtcdUnavailable as error:
            message = f"deletion waits for etcd: {error}"
            record(body, patch, Outcome(Reason.ETCD_UNAVAILABLE, message))
            raise kopf.TemporaryError(
                message, delay=backoff(Reason.ETCD_UNAVAILABLE, retry)
            ) from None
        if not result.done:
            raise kopf.TemporaryError(
                result.outcome.message, delay=backoff(Reason.PROXIES_PENDING, retry)
            )
        _post_notes(body, result)
        if result.mark:
            await _mark_users(runtime, kw["users_by_role"], spec.role, result.mark)


async def _reconcile_role(
    runtime: OperatorRuntime,
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    users_by_role: kopf.Index[str, tuple[str, str]],
) -> None:
    if body.metadata.deletion_timestamp:
        return  # the resync timer may still tick while `remove_role` runs
    spec = RoleSpec.from_body(body)
    applied = Applied.from_status(body.get("status"))
    applied_role = applied.role_name
    if applied_role and applied_role != spec.role:
        # The CRD's CEL rule refuses a rename; this guards servers without it.
        message = f"spec.roleName is immutable: this resource manages role {applied_role}"
        result = RoleResult(Outcome(Reason.INVALID_SPEC, message))
    else:
        result = await runtime.roles.reconcile(
            spec, ready=applied.ready, observed=applied.observed_generation
        )
    record(body, patch, result.outcome)
    _post_notes(body, result)
    if result.mark:
        await _mark_users(runtime, users_by_role, spec.role, result.mark)
    outcome = result.outcome
    if not outcome.ready and not outcome.stalled:
        raise kopf.TemporaryError(outcome.message, delay=backoff(outcome.reason, retry))


def _post_notes(body: kopf.Body, result: RoleResult) -> None:
    for note in result.notes:
        kopf.event(body, type=note.type, reason=note.reason, message=note.message)


async def _mark_users(
    runtime: OperatorRuntime, users_by_role: kopf.Index[str, tuple[str, str]], role: str, mark: str
) -> None:
    """Annotate the MilvusUsers naming `role`, so kopf reconciles them now."""
    change = {"metadata": {"annotations": {ROLE_TRIGGER_ANNOTATION: f"{role}:{mark}"}}}
    for namespace, name in users_by_role.get(role, []):
        path = namespaced_path(API_VERSION, namespace, USER_PLURAL, name)
        try:
            await runtime.kube.patch(path, change)
        except KubeError as error:
            # Their retries and the resync timer still pick the change up.
            log.warning("cannot mark %s/%s for role %s: %s", namespace, name, role, error)
