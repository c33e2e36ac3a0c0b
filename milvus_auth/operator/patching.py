"""Status writes that outlast the API server's transient refusals.

kopf sends the status a handler leaves in its patch once, after the handler returns; when the
API server refuses it (409 Conflict, 422 from a validation race such as kubernetes#114661 on
1.25.0-1.25.5, 429, a 5xx, a dropped connection), kopf logs the failure and drops the event,
and the status waits for the object's next event, up to a resync period. The MilvusUser
handlers still leave their status to kopf (one patch, after kopf's own, so kopf never sees an
event of a half-recorded change), and a `StatusGuard` checks a moment later that it landed;
when it did not, the `StatusWriter` writes it, retrying with backoff.

Only answered refusals are retried: the write did not happen, so sending it again cannot
overtake a later write. A request left without an answer (a timeout, a dropped connection)
may still be applied, so it is not sent again here; the caller hands the status to kopf. A
422 is retried too, because the validation race looks like a real refusal; a status this
operator builds always passes its CRD's schema, so a real one ends after the last retry, as a
`KubeError` the caller reports. Status writes get a long timeout, so that a slow API server
answers rather than leaving a write in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from milvus_auth.operator.kube import KubeClient, KubeError

log = logging.getLogger(__name__)

# About 8 s in all: long enough for a validation race or a leader change.
DEFAULT_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 3.0)
STATUS_TIMEOUT = 60.0
_TRANSIENT = frozenset({409, 422, 429})


def is_transient(status: int) -> bool:
    """Whether the API server refused for a reason that may be gone in a moment (0, no
    answer at all, is not: the request may still be applied)."""
    return status in _TRANSIENT or status >= 500


class StatusWriter:
    """Merge-patches an object's status subresource, retrying transient refusals at once."""

    def __init__(self, kube: KubeClient, *, delays: Sequence[float] = DEFAULT_DELAYS) -> None:
        self.kube = kube
        self.delays = tuple(delays)
        self.retries = 0
        """Refusals retried so far (for tests and the log)."""

    async def write(self, path: str, status: Mapping[str, Any]) -> bool:
        """Patch `status` into the object at `path`; False when the object is gone (404).

        Raises the last `KubeError` when the refusal is not transient or outlasts the retries.
        """
        delays = iter(self.delays)
        while True:
            try:
                body = {"status": dict(status)}
                await self.kube.patch(f"{path}/status", body, time_limit=STATUS_TIMEOUT)
            except KubeError as error:
                if error.status == 404:
                    return False
                delay = next(delays, None)
                if delay is None or not is_transient(error.status):
                    raise
                self.retries += 1
                log.info("status of %s refused (%s); retrying in %.1f s", path, error, delay)
                await asyncio.sleep(delay)
            else:
                return True


class StatusGuard:
    """After kopf's status patch, checks that it landed; if it did not, writes it again."""

    def __init__(self, kube: KubeClient, writer: StatusWriter, *, delay: float = 2.0) -> None:
        self.kube = kube
        self.writer = writer
        self.delay = delay
        self.missed = 0
        """Status patches found missing and written again (for tests and the log)."""
        self._checks: dict[str, asyncio.Task[None]] = {}

    def expect(self, path: str, *, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """kopf is about to change the status fields of `path` from `before` to `after`; a
        newer expectation for the same object replaces this one."""
        earlier = self._checks.pop(path, None)
        if earlier is not None:
            earlier.cancel()
        check = asyncio.create_task(self._check(path, dict(before), dict(after)))
        self._checks[path] = check
        check.add_done_callback(lambda done: self._forget(path, done))

    def _forget(self, path: str, done: asyncio.Task[None]) -> None:
        if self._checks.get(path) is done:
            del self._checks[path]

    async def _check(self, path: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        await asyncio.sleep(self.delay)
        try:
            live = await self.kube.get(path)
            if live is None:
                return
            status = live.get("status") or {}
            if all(status.get(key) == value for key, value in after.items()):
                return
            if any(status.get(key) != before.get(key) for key in after):
                return  # a newer change landed meanwhile: never put an older one back
            self.missed += 1
            log.warning("the status patch of %s did not land; writing it again", path)
            await self.writer.write(path, after)
        except KubeError as error:
            log.warning("cannot check or write the status of %s: %s", path, error)

    async def close(self) -> None:
        """Cancel the checks still waiting (the operator is stopping)."""
        checks, self._checks = list(self._checks.values()), {}
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)
