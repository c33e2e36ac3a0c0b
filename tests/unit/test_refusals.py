"""Refused logins: every one counted, the first of a kind logged at once, repeats once per
interval with the number not shown, nothing secret in a line."""

from __future__ import annotations

import logging

import pytest

from milvus_auth.proxy.authn.refusals import RefusalReporter, RepeatGate
from milvus_auth.proxy.metrics import ProxyMetrics

PEER = "ipv4:10.0.0.7:5123"
METHOD = "/milvus.proto.milvus.MilvusService/Search"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_shows_the_first_then_one_per_interval_with_the_hidden_count() -> None:
    clock = Clock()
    gate = RepeatGate(interval=1.0, clock=clock)
    key = ("rate_limited", "alice", "10.0.0.7")
    assert gate.admit(key) == 0
    assert [gate.admit(key) for _ in range(5)] == [None] * 5
    assert gate.admit(("rate_limited", "bob", "10.0.0.7")) == 0  # another kind: at once
    clock.now += 1.0
    assert gate.admit(key) == 5
    assert gate.admit(key) is None


def test_a_forgotten_kind_is_shown_again() -> None:
    gate = RepeatGate(max_kinds=2, clock=Clock())
    first = ("missing_authorization", None, "10.0.0.1")
    assert gate.admit(first) == 0
    gate.admit(("missing_authorization", None, "10.0.0.2"))
    gate.admit(("missing_authorization", None, "10.0.0.3"))  # pushes `first` out
    assert gate.admit(first) == 0


def _count(metrics: ProxyMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "milvus_auth_proxy_auth_total", {"result": "failure", "reason": reason}
    )
    return value or 0.0


def test_every_refusal_is_counted_and_repeats_are_summed_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    metrics = ProxyMetrics()
    reporter = RefusalReporter(metrics, RepeatGate(clock=clock))
    for _ in range(100):
        reporter.refused(username="alice", peer=PEER, method=METHOD, reason="rate_limited")
    reporter.refused(username=None, peer=PEER, method=METHOD, reason="missing_authorization")
    clock.now += 1.5
    reporter.refused(
        username="alice", peer="ipv4:10.0.0.7:6000", method=METHOD, reason="rate_limited"
    )
    assert _count(metrics, "rate_limited") == 101
    assert _count(metrics, "missing_authorization") == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"auth failure user='alice' peer={PEER} method={METHOD} reason=rate_limited",
        f"auth failure user=None peer={PEER} method={METHOD} reason=missing_authorization",
        "auth failure user='alice' peer=ipv4:10.0.0.7:6000 "
        f"method={METHOD} reason=rate_limited (99 more since the last line)",
    ]
