"""Failed-login log lines: a few per username and per client address per window, then summaries."""

from __future__ import annotations

import asyncio
import logging

import pytest

from milvus_auth.proxy.authn.loglimit import (
    MAX_SUMMARIES,
    OTHERS,
    FailureLog,
    LogLimiter,
    LogLimitSettings,
    Suppressed,
    summary,
)
from tests.unit.test_ratelimit import Clock

PEER = "ipv4:10.0.0.7:51234"


def test_a_burst_of_lines_then_one_summary_when_the_window_ends() -> None:
    clock = Clock()
    limiter = LogLimiter(LogLimitSettings(burst=3, interval=10.0), clock)
    admitted = [limiter.admit("'alice'", "10.0.0.7") for _ in range(50)]
    assert admitted == [True] * 3 + [False] * 47
    clock.now += 9.9
    assert limiter.roll() == []  # the window has not ended
    clock.now += 0.1
    assert limiter.roll() == [Suppressed("'alice'", "10.0.0.7", 47, 10.0)]
    assert limiter.roll() == []  # reported once
    assert limiter.admit("'alice'", "10.0.0.7")  # a new window, a new burst


def test_the_burst_is_per_username_and_per_address() -> None:
    limiter = LogLimiter(LogLimitSettings(burst=2, interval=10.0), Clock())
    # One address trying many usernames: two lines, whatever the names.
    assert [limiter.admit(f"'u{i}'", "10.0.0.7") for i in range(5)] == [True, True] + [False] * 3
    # Many addresses trying one username: two lines for that username.
    assert [limiter.admit("'bob'", f"10.0.1.{i}") for i in range(5)] == [True, True] + [False] * 3
    # Another username from another address is not affected.
    assert limiter.admit("'carol'", "10.0.2.1")


def test_summaries_are_bounded_per_window() -> None:
    clock = Clock()
    limiter = LogLimiter(LogLimitSettings(burst=1, interval=1.0), clock)
    for i in range(MAX_SUMMARIES + 50):
        limiter.admit(f"'u{i}'", "10.0.0.7")
        limiter.admit(f"'u{i}'", "10.0.0.7")
    clock.now += 1.0
    ended = limiter.roll()
    assert len(ended) == MAX_SUMMARIES + 1
    assert ended[-1].username == OTHERS
    # Every failure is accounted for: one line admitted plus the suppressed ones.
    assert 1 + sum(s.count for s in ended) == 2 * (MAX_SUMMARIES + 50)


def test_new_keys_beyond_max_tracked_are_suppressed_not_stored() -> None:
    limiter = LogLimiter(LogLimitSettings(burst=5, interval=1.0, max_tracked=3), Clock())
    assert [limiter.admit(f"'u{i}'", f"10.0.0.{i}") for i in range(5)] == [True] * 3 + [False] * 2
    assert limiter.admit("'u0'", "10.0.0.0")  # a key already counted keeps its budget


def test_burst_zero_admits_everything() -> None:
    limiter = LogLimiter(LogLimitSettings(burst=0, interval=1.0), Clock())
    assert all(limiter.admit("'alice'", "10.0.0.7") for _ in range(1000))


def test_final_roll_reports_the_current_window_with_its_real_length() -> None:
    clock = Clock()
    limiter = LogLimiter(LogLimitSettings(burst=1, interval=10.0), clock)
    limiter.admit("'alice'", "10.0.0.7")
    limiter.admit("'alice'", "10.0.0.7")
    clock.now += 2.5
    assert limiter.roll(final=True) == [Suppressed("'alice'", "10.0.0.7", 1, 2.5)]


def test_summary_text() -> None:
    assert (
        summary(Suppressed("'alice'", "10.0.0.7", 47, 10.0))
        == "suppressed 47 failed logins for user 'alice' from peer 10.0.0.7 in the last 10 s"
    )
    assert "for other users and peers" in summary(Suppressed(OTHERS, OTHERS, 3, 10.0))


def test_failure_log_writes_lines_then_the_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.loglimit")
    failure_log = FailureLog(LogLimitSettings(burst=2, interval=10.0), logger, clock)
    caplog.set_level(logging.WARNING, logger="test.loglimit")
    for _ in range(10):
        failure_log.failure("alice", peer=PEER, method="'/m'", reason="wrong_password")
    # An invalid username (here a password typed into the user field) is never shown.
    failure_log.failure("Secret Pass!", peer="ipv4:10.9.9.9:1", method="'/m'", reason="x")
    clock.now += 10.0
    failure_log.flush()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        f"auth failure user='alice' peer={PEER} method='/m' reason=wrong_password",
        f"auth failure user='alice' peer={PEER} method='/m' reason=wrong_password",
        "auth failure user=<invalid> peer=ipv4:10.9.9.9:1 method='/m' reason=x",
        "suppressed 8 failed logins for user 'alice' from peer 10.0.0.7 in the last 10 s",
    ]
    assert "Secret Pass!" not in caplog.text


async def test_run_reports_the_last_window_when_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.loglimit.run")
    failure_log = FailureLog(LogLimitSettings(burst=1, interval=3600.0), logger)
    caplog.set_level(logging.WARNING, logger="test.loglimit.run")
    for _ in range(3):
        failure_log.failure("bob", peer=PEER, method="'/m'", reason="wrong_password")
    task = asyncio.create_task(failure_log.run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith("suppressed 2 failed logins for user 'bob' from peer 10.0.0.7")
    )


def test_api_key_failures_share_the_bound_and_show_only_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logger = logging.getLogger("test.loglimit.keys")
    failure_log = FailureLog(LogLimitSettings(burst=2, interval=10.0), logger, clock)
    caplog.set_level(logging.WARNING, logger="test.loglimit.keys")
    for _ in range(5):
        failure_log.key_failure("0123456789abcdef", peer=PEER, method="'/m'", reason="wrong_secret")
    failure_log.key_failure(None, peer="ipv4:10.9.9.9:1", method="'/m'", reason="malformed")
    clock.now += 10.0
    failure_log.flush()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        f"api key auth failure key=0123456789abcdef peer={PEER} method='/m' reason=wrong_secret",
        f"api key auth failure key=0123456789abcdef peer={PEER} method='/m' reason=wrong_secret",
        "api key auth failure key=None peer=ipv4:10.9.9.9:1 method='/m' reason=malformed",
        "suppressed 3 failed logins for API key 0123456789abcdef from peer 10.0.0.7 in the last 10 s",
    ]
