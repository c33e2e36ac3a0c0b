"""How refused logins are reported: every one counted, repeats logged once a second.

A flood of refused calls (no header, a guesser the rate limit stops) should cost the proxy the
gRPC call and little more, but a log line costs about as much as all the rest of a refusal's
own work (bench/percall.py), and thousands of identical lines a second bury the log. So the
metric counts every refusal, while a line is written for the first refusal of a kind (reason,
username, client address) and then at most once per `interval` for that kind, saying how many
were not shown since. A new kind is always logged at once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import Counter

from milvus_auth.proxy.authn.ratelimit import peer_address
from milvus_auth.proxy.logsafe import shown_username
from milvus_auth.proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

Key = tuple[str, str | None, str]


class RepeatGate:
    """Decides which repeats of a kind are shown: the first, then one per `interval`."""

    def __init__(
        self,
        *,
        interval: float = 1.0,
        max_kinds: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max_kinds = max_kinds
        self._clock = clock
        self._kinds: OrderedDict[Key, tuple[float, int]] = OrderedDict()

    def admit(self, key: Key) -> int | None:
        """None to stay silent; else how many of this kind were not shown since the last."""
        now = self._clock()
        found = self._kinds.get(key)
        if found is not None:
            shown_at, hidden = found
            if now - shown_at < self._interval:
                self._kinds[key] = (shown_at, hidden + 1)
                return None
        self._kinds[key] = (now, 0)
        self._kinds.move_to_end(key)
        if len(self._kinds) > self._max_kinds:
            self._kinds.popitem(last=False)  # forgotten kinds are shown again: never lost
        return 0 if found is None else found[1]


class RefusalReporter:
    """Counts each refused login in the metrics and logs it through a `RepeatGate`."""

    def __init__(self, metrics: ProxyMetrics, gate: RepeatGate | None = None) -> None:
        self._metrics = metrics
        self._gate = gate or RepeatGate()
        self._counters: dict[str, Counter] = {}

    def refused(self, *, username: str | None, peer: str, method: str, reason: str) -> None:
        """One refusal; `username` None when the header named none (or was unreadable)."""
        counter = self._counters.get(reason)
        if counter is None:  # `labels()` locks and builds a key: resolved once per reason
            counter = self._counters[reason] = self._metrics.auth_results.labels("failure", reason)
        counter.inc()
        hidden = self._gate.admit((reason, username, peer_address(peer)))
        if hidden is None:
            return
        shown = "None" if username is None else shown_username(username)
        more = f" ({hidden} more since the last line)" if hidden else ""
        log.warning(
            "auth failure user=%s peer=%s method=%s reason=%s%s", shown, peer, method, reason, more
        )
