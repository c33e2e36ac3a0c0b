"""Which API server refusals the status writer retries, how many times, and when the guard
writes a status kopf's patch did not land."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from milvus_auth.operator.kube import KubeClient, KubeError
from milvus_auth.operator.patching import StatusGuard, StatusWriter, is_transient


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        *[(status, True) for status in (409, 422, 429, 500, 503, 504)],
        *[(status, False) for status in (0, 400, 401, 403, 404)],
    ],
)
def test_transient_statuses(status: int, transient: bool) -> None:
    assert is_transient(status) is transient


class RefusingKube(KubeClient):
    """Answers each patch with the next planned status (200 when none is left)."""

    def __init__(self, statuses: list[int], live: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.statuses = statuses
        self.live = live
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def get(self, path: str) -> dict[str, Any] | None:
        return self.live

    async def patch(
        self, path: str, body: dict[str, Any], *, time_limit: float | None = None
    ) -> dict[str, Any]:
        self.patches.append((path, body))
        if self.statuses:
            raise KubeError(self.statuses.pop(0), "refused")
        return body


async def test_retries_until_accepted_then_stops() -> None:
    kube = RefusingKube([422, 409, 502])
    writer = StatusWriter(kube, delays=(0, 0, 0, 0))
    assert await writer.write("/apis/g/v1/namespaces/n/things/a", {"x": 1})
    assert writer.retries == 3
    assert kube.patches[-1] == ("/apis/g/v1/namespaces/n/things/a/status", {"status": {"x": 1}})
    assert len(kube.patches) == 4


async def test_gives_up_after_the_last_delay_or_at_once_when_not_transient() -> None:
    with pytest.raises(KubeError, match="422"):
        await StatusWriter(RefusingKube([422] * 3), delays=(0, 0)).write("/p", {})
    with pytest.raises(KubeError, match="400"):
        await StatusWriter(RefusingKube([400]), delays=(0, 0)).write("/p", {})
    assert not await StatusWriter(RefusingKube([404]), delays=(0,)).write("/p", {})


@pytest.mark.parametrize(
    ("live_status", "written"),
    [
        ({"phase": "old"}, True),  # kopf's patch did not land
        ({"phase": "new"}, False),  # it did
        ({"phase": "newer"}, False),  # a newer change did: never put an older one back
    ],
)
async def test_the_guard_writes_only_a_status_that_did_not_land(
    live_status: dict[str, Any], written: bool
) -> None:
    kube = RefusingKube([], live={"status": live_status})
    guard = StatusGuard(kube, StatusWriter(kube, delays=()), delay=0)
    guard.expect("/p", before={"phase": "old"}, after={"phase": "new"})
    await asyncio.sleep(0.05)
    assert guard.missed == int(written)
    assert kube.patches == ([("/p/status", {"status": {"phase": "new"}})] if written else [])
    await guard.close()


async def test_a_newer_expectation_replaces_the_pending_check() -> None:
    kube = RefusingKube([], live={"status": {"phase": "old"}})
    guard = StatusGuard(kube, StatusWriter(kube, delays=()), delay=0.05)
    guard.expect("/p", before={"phase": "old"}, after={"phase": "new"})
    guard.expect("/p", before={"phase": "old"}, after={"phase": "newer"})
    await asyncio.sleep(0.2)
    assert kube.patches == [("/p/status", {"status": {"phase": "newer"}})]
    await guard.close()
