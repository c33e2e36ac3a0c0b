"""Bounded failed-login log lines: a few per username and per client address, then a summary.

Without a bound a wrong-password flood writes one line per attempt (about 1,000 a second).
Time is cut into windows of `interval` seconds. In each window a failure gets its own line
while its username and its client address have each had fewer than `burst` lines; the others
are counted per (username, address) and, when the window ends, reported as one summary line per
pair. A window reports at most `MAX_SUMMARIES` pairs; the rest share one more summary. So one
client address, whatever usernames it tries, costs at most `burst + MAX_SUMMARIES + 1` lines a
window. The metrics count every failure: only log lines are limited.

`LogLimiter` decides (pure, with an injected clock); `FailureLog` writes the lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from milvus_auth.proxy.authn.ratelimit import Clock, peer_address
from milvus_auth.proxy.logsafe import shown_username

MAX_SUMMARIES = 100
"""Pairs with their own summary line per window; the rest are summed in one more line."""
OTHERS = "*"
"""The username and address of the summary that sums the pairs beyond `MAX_SUMMARIES`."""
API_KEY_SUBJECT = "apikey:"
"""Prefix of an API key's id where the limiter counts usernames: no username has a colon."""


@dataclass(frozen=True)
class LogLimitSettings:
    """How many failed-login lines are written; a burst of 0 writes every one."""

    burst: int = 5
    """Lines per username and per client address in one window."""
    interval: float = 10.0
    """Seconds in one window."""
    max_tracked: int = 10_000
    """Usernames and addresses counted per window (memory bound); failures of keys beyond it
    are suppressed and summed."""


@dataclass(frozen=True)
class Suppressed:
    """Failures of one (username, address) pair that got no line of their own in a window."""

    username: str
    """As a log line shows it (`logsafe.shown_username`), or `OTHERS`."""
    address: str
    """The client address without its port, or `OTHERS`."""
    count: int
    seconds: float
    """The window's length."""


class LogLimiter:
    """Decides which failures get a line, and what a window that ended suppressed."""

    def __init__(self, settings: LogLimitSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._started = clock()
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()
        self._suppressed: Counter[tuple[str, str]] = Counter()

    @property
    def enabled(self) -> bool:
        """False when the burst is 0: every failure gets a line."""
        return self._settings.burst > 0

    def admit(self, username: str, address: str) -> bool:
        """Whether this failure gets its own line; otherwise it is counted for a summary.

        Call `roll` first, so a failure after a window's end counts in the next window.
        """
        if not self.enabled:
            return True
        burst = self._settings.burst
        users, addresses = self._users, self._addresses
        if (
            users[username] < burst
            and addresses[address] < burst
            and self._room(users, username)
            and self._room(addresses, address)
        ):
            users[username] += 1
            addresses[address] += 1
            return True
        pair = (username, address)
        if pair not in self._suppressed and len(self._suppressed) >= MAX_SUMMARIES:
            pair = (OTHERS, OTHERS)
        self._suppressed[pair] += 1
        return False

    def roll(self, *, final: bool = False) -> list[Suppressed]:
        """When the window has ended (or `final`: at shutdown): what it suppressed, and a new
        window from now."""
        now = self._clock()
        seconds = self._settings.interval
        if now - self._started < seconds:
            if not final:
                return []
            seconds = now - self._started
        ended = [
            Suppressed(username, address, count, seconds)
            for (username, address), count in self._suppressed.items()
        ]
        self._started = now
        self._users.clear()
        self._addresses.clear()
        self._suppressed.clear()
        return ended

    def _room(self, table: Counter[str], key: str) -> bool:
        """A key counted before is kept; a new one only while the table is small."""
        return key in table or len(table) < self._settings.max_tracked


class FailureLog:
    """Writes the failed-login lines the limiter admits, and the summaries of ended windows."""

    def __init__(
        self, settings: LogLimitSettings, logger: logging.Logger, clock: Clock = time.monotonic
    ) -> None:
        self._limiter = LogLimiter(settings, clock)
        self._interval = settings.interval
        self._log = logger

    def failure(self, username: str | None, *, peer: str, method: str, reason: str) -> None:
        """One failed login (`username` None: no username was sent); `method` comes escaped."""
        shown = shown_username(username)
        line = ("auth failure user=%s peer=%s method=%s reason=%s", shown, peer, method, reason)
        self._write(shown, peer, line)

    def key_failure(self, key_id: str | None, *, peer: str, method: str, reason: str) -> None:
        """One failed API-key login (`key_id` None: the key was malformed); only the id, which is
        public, is ever shown."""
        subject = f"{API_KEY_SUBJECT}{key_id or '-'}"
        line = (
            "api key auth failure key=%s peer=%s method=%s reason=%s",
            key_id,
            peer,
            method,
            reason,
        )
        self._write(subject, peer, line)

    def _write(self, subject: str, peer: str, line: tuple[str, *tuple[object, ...]]) -> None:
        """`line` (a format and its arguments) if the limiter admits `subject` from `peer`'s
        address now; otherwise counted for the window's summary."""
        self.flush()
        if self._limiter.admit(subject, peer_address(peer)):
            self._log.warning(*line)

    def flush(self, *, final: bool = False) -> None:
        """Write the summaries of a window that has ended (`final`: of the current one too)."""
        for suppressed in self._limiter.roll(final=final):
            self._log.warning(summary(suppressed))

    async def run(self) -> None:
        """Report each ended window even when no failure follows it (see `flush_every`)."""
        await flush_every(self._interval, self.flush)


async def flush_every(interval: float, flush: Callable[..., None]) -> None:
    """Call `flush()` every `interval` seconds, so the last window of a flood is reported when
    the flood stops, and `flush(final=True)` when cancelled (at shutdown)."""
    try:
        while True:
            await asyncio.sleep(interval)
            flush()
    finally:
        flush(final=True)


def summary(suppressed: Suppressed) -> str:
    """The summary line of one pair."""
    if suppressed.username == OTHERS:
        return (
            f"suppressed {suppressed.count} failed logins for other users and peers "
            f"in the last {suppressed.seconds:.3g} s"
        )
    subject = suppressed.username
    who = (
        f"API key {subject.removeprefix(API_KEY_SUBJECT)}"
        if subject.startswith(API_KEY_SUBJECT)
        else f"user {subject}"
    )
    return (
        f"suppressed {suppressed.count} failed logins for {who} "
        f"from peer {suppressed.address} in the last {suppressed.seconds:.3g} s"
    )
