"""kopf's PATCHes that the API server refuses for a passing reason are tried again at once.

kopf retries a PATCH answered with 5xx, 429 or 403, or left without an answer, by itself
(`settings.networking.error_backoffs`). A 409 Conflict, or a 422 from a validation race such as
kubernetes#114661 (1.25.0-1.25.5), it does not: the error reaches its per-object throttler,
the status or finalizer change is dropped, and nothing happens until the object's next watch
event, which for a MilvusUser nobody touches is the next resync, 5 minutes away by default.

kopf has no hook for this, so `install` wraps its one patching function
(`kopf._cogs.clients.patching.patch_obj`, a private module; tests/operator/test_patch_retries.py
fails if a kopf release changes it): a PATCH refused with 409 or 422 is sent again after
`RETRY_DELAYS`, then, still refused, handed to kopf as before. A merge patch carries no
resource version and is idempotent, so sending it again is safe; kopf's own JSON patches for
finalizers test the resource version and handle their 422 themselves before this sees it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import kopf
from kopf._cogs.clients import errors, patching

from milvus_auth.operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
_PASSING = (errors.APIConflictError, errors.APIUnprocessableEntityError)
# By id of each operator's settings (kopf's settings are unhashable), dropped with them.
_metrics: dict[int, OperatorMetrics] = {}

P = ParamSpec("P")
R = TypeVar("R")


def install(settings: kopf.OperatorSettings, metrics: OperatorMetrics) -> None:
    """Retry refused PATCHes for the operator with these settings, counted in its metrics.

    The wrapper is installed once per process; each operator's retries count in its own
    metrics (tests run several operators in one process).
    """
    _metrics[id(settings)] = metrics
    weakref.finalize(settings, _metrics.pop, id(settings), None)
    if not getattr(patching.patch_obj, "retries_refusals", False):
        patching.patch_obj = _retrying(patching.patch_obj)


def _retrying(
    patch_obj: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    async def patch_with_retries(*args: P.args, **kwargs: P.kwargs) -> R:
        for delay in RETRY_DELAYS:
            try:
                return await patch_obj(*args, **kwargs)
            except _PASSING as error:
                _note(kwargs, error, delay)
            await asyncio.sleep(delay)
        return await patch_obj(*args, **kwargs)

    patch_with_retries.retries_refusals = True  # type: ignore[attr-defined]
    return patch_with_retries


def _note(kwargs: dict[str, Any], error: errors.APIError, delay: float) -> None:
    status = str(error.status)
    metrics = _metrics.get(id(kwargs.get("settings")))
    if metrics is not None:
        metrics.patch_retries.labels(status).inc()
    resource = kwargs.get("resource")
    plural = getattr(resource, "plural", "objects")
    where = f"{kwargs.get('namespace') or ''}/{kwargs.get('name') or ''}"
    # The API server's message names the field and the rule; statuses hold no secret.
    message = str(error.args[0])[:200] if error.args and error.args[0] else "no message"
    log.warning(
        "the API server refused a patch of %s %s with %s (%s); trying again in %.1f s",
        plural,
        where,
        status,
        message,
        delay,
    )
