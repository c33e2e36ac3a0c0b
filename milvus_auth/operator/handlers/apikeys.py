"""The kopf handlers of MilvusAPIKeys: reconcile, resync, schedule, revoke, and their Secrets.

Create, resume and update share one reconcile; the resync timer refreshes `lastUsedTime` and
repairs drift. A daemon per resource sleeps until the next time its status names (a grace
period ending, the key expiring, a scheduled rotation) and then marks the resource
(annotation `trigger.auth.milvus.io/schedule`), which kopf sees as an update and reconciles
at once; a deleted key Secret marks its owner the same way (`trigger.auth.milvus.io/secret`).
Deletion revokes every key behind the `auth.milvus.io/finalizer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from milvus_auth.operator.apikeys.act import KeyResult
from milvus_auth.operator.apikeys.report import key_status, next_due
from milvus_auth.operator.apikeys.secret import API_KEY_LABEL
from milvus_auth.operator.apikeys.spec import KIND, PLURAL, ApiKeySpec
from milvus_auth.operator.handlers.common import REMOVAL_RETRIES, backoff, record
from milvus_auth.operator.kube import KubeError, namespaced_path
from milvus_auth.operator.resources import GROUP, VERSION
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.operator.status import Applied, Outcome, Reason
from milvus_auth.store import EtcdUnavailable

log = logging.getLogger(__name__)
KEYS = (GROUP, VERSION, PLURAL)
SCHEDULE_ANNOTATION = f"trigger.{GROUP}/schedule"
SECRET_ANNOTATION = f"trigger.{GROUP}/secret"
POLL = 1.0  # how often the daemon re-reads the live status for a sooner time
MARGIN = 0.2  # wake a little after a due second, never before it


def register_apikeys(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    """Every handler of MilvusAPIKeys and their Secrets."""

    @kopf.on.resume(*KEYS, id="reconcile", registry=registry)
    @kopf.on.create(*KEYS, id="reconcile", registry=registry)
    @kopf.on.update(*KEYS, id="reconcile", registry=registry)
    async def reconcile_key(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        await _reconcile_key(runtime, body, patch, retry)

    @kopf.timer(
        *KEYS,
        id="resync",
        interval=runtime.config.resync_period,
        initial_delay=runtime.config.resync_period,
        registry=registry,
    )
    async def resync_key(body: kopf.Body, patch: kopf.Patch, **kw: Any) -> None:
        await _reconcile_key(runtime, body, patch, int(kw.get("retry") or 0))

    # With a cancellation timeout kopf cancels the daemon's sleep at once when it stops it
    # (deletion, shutdown); without one it would re-check only every 60 s, holding deletions.
    # A plain sleep, because kopf's `stopped.wait()` leaves a timer task failing the shutdown.
    @kopf.daemon(*KEYS, id="schedule", cancellation_timeout=1.0, registry=registry)
    async def schedule(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
        fired = time.time()  # what is due before the daemon started, resume handles
        while not stopped:
            due = next_due(body.get("status") or {}, after=fired)
            now = time.time()
            if due is not None and now >= due + MARGIN:
                fired = due
                await _mark(
                    runtime,
                    body.metadata.namespace or "",
                    body.metadata.name or "",
                    {SCHEDULE_ANNOTATION: str(int(due))},
                )
                continue
            wait = POLL if due is None else min(POLL, due + MARGIN - now)
            await asyncio.sleep(wait)

    @kopf.on.delete(*KEYS, id="remove", registry=registry)
    async def remove_key(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        spec = ApiKeySpec.from_body(body)
        give_up = retry >= REMOVAL_RETRIES
        try:
            result = await runtime.apikeys.remove(spec, give_up=give_up)
        except EtcdUnavailable as error:
            message = f"revocation waits for etcd: {error}"
            record(body, patch, Outcome(Reason.ETCD_UNAVAILABLE, message))
            delay = backoff(Reason.ETCD_UNAVAILABLE, retry)
            raise kopf.TemporaryError(message, delay=delay) from None
        if not result.done:
            _record(body, patch, result)
            message = result.outcome.message
            raise kopf.TemporaryError(message, delay=backoff(Reason.PROXIES_PENDING, retry))
        if give_up and not (result.outcome.proxies and result.outcome.proxies.complete):
            message = "finalizer removed; not every proxy confirmed (they also watch etcd)"
            kopf.event(body, type="Warning", reason="ProxiesPending", message=message)
        _post_notes(body, result)

    @kopf.on.event("v1", "secrets", labels={API_KEY_LABEL: "true"}, registry=registry)
    async def key_secret_changed(type: str, body: kopf.Body, **_: Any) -> None:
        if type != "DELETED":
            return  # edits are repaired at resync; the operator's own writes need nothing
        owners = body.metadata.get("ownerReferences") or []
        for owner in owners:
            if owner.get("kind") == KIND and owner.get("apiVersion") == f"{GROUP}/{VERSION}":
                mark = {SECRET_ANNOTATION: f"deleted:{body.metadata.uid}"}
                await _mark(runtime, body.metadata.namespace or "", str(owner.get("name")), mark)


async def _reconcile_key(
    runtime: OperatorRuntime, body: kopf.Body, patch: kopf.Patch, retry: int
) -> None:
    if body.metadata.deletion_timestamp:
        return  # the resync timer may still tick while `remove_key` runs: never re-issue
    spec = ApiKeySpec.from_body(body)
    ready = Applied.from_status(body.get("status")).ready
    result = await runtime.apikeys.reconcile(spec, ready=ready)
    _record(body, patch, result)
    _post_notes(body, result)
    outcome = result.outcome
    if not outcome.ready and not outcome.stalled:
        raise kopf.TemporaryError(outcome.message, delay=backoff(outcome.reason, retry))


def _record(body: kopf.Body, patch: kopf.Patch, result: KeyResult) -> None:
    record(body, patch, result.outcome, lambda new, old: key_status(new, old, result.fields))


def _post_notes(body: kopf.Body, result: KeyResult) -> None:
    for note in result.notes:
        kopf.event(body, type=note.type, reason=note.reason, message=note.message)


async def _mark(
    runtime: OperatorRuntime, namespace: str, name: str, annotations: dict[str, str]
) -> None:
    """Annotate a MilvusAPIKey, so kopf reconciles it now."""
    path = namespaced_path(f"{GROUP}/{VERSION}", namespace, PLURAL, name)
    try:
        await runtime.kube.patch(path, {"metadata": {"annotations": annotations}})
    except KubeError as error:
        # Its resync timer still picks the change up; say why it was not immediate.
        log.warning("cannot mark MilvusAPIKey %s/%s: %s", namespace, name, error)
