"""The proxy's operations flags: TLS of the internal port and the upstream, and its logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from milvus_auth.config import ConfigError
from milvus_auth.proxy.accesslog import AccessLogSettings
from milvus_auth.proxy.authn.loglimit import LogLimitSettings
from milvus_auth.proxy.opsconfig import OpsSettings
from tests.unit.test_proxy_config import settings_from

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "pair.pem"
    path.write_text(PEM)
    return str(path)


def test_defaults_change_nothing() -> None:
    assert settings_from().ops == OpsSettings()
    assert settings_from().ops.failed_login_log == LogLimitSettings(burst=5, interval=10.0)


def test_tls_flags_become_typed_settings(pem: str, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret-key-material\n")
    ops = settings_from(
        "--internal-tls-cert", pem, "--internal-tls-key", str(key), "--internal-tls-client-ca", pem,
        "--upstream-tls", "--upstream-ca", pem, "--upstream-server-name", "milvus.svc",
        "--upstream-cert", pem, "--upstream-key", str(key),
    ).ops  # fmt: skip
    assert ops.internal_tls is not None
    assert ops.internal_tls.client_ca == PEM.encode()
    assert ops.upstream_tls is not None
    assert ops.upstream_tls.server_name == "milvus.svc"
    assert ops.upstream_tls.certificate == PEM.encode()
    assert ops.upstream_tls.private_key == key.read_bytes()
    assert "secret-key-material" not in repr(ops)


def test_bare_upstream_tls_trusts_the_system_roots() -> None:
    upstream = settings_from("--upstream-tls").ops.upstream_tls
    assert upstream is not None
    assert upstream.ca is None
    assert upstream.certificate is None


def test_log_flags_and_their_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "MILVUS_AUTH_FAILED_LOGIN_LOG_BURST", "2")
    monkeypatch.setitem(os.environ, "MILVUS_AUTH_ACCESS_LOG_SAMPLE_RATE", "0.25")
    ops = settings_from("--failed-login-log-interval", "30", "--access-log", "-").ops
    assert ops.failed_login_log == LogLimitSettings(burst=2, interval=30.0)
    assert ops.access_log == AccessLogSettings("-", sample_rate=0.25)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--failed-login-log-interval", "0"], "more than 0 seconds"),
        (["--upstream-server-name", "x"], "need --upstream-tls"),
    ],
)
def test_settings_that_cannot_work(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(*argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--access-log-sample-rate", "1.5"],
        ["--failed-login-log-burst", "-1"],
        ["--access-log-backups", "-2"],
    ],
)
def test_values_out_of_range_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        settings_from(*argv)
