"""The proxy's own flags: where the internal port listens and when it may go without a token."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from milvus_auth.config import ConfigError, add_common_arguments
from milvus_auth.proxy.config import (
    ProxySettings,
    add_proxy_arguments,
    internal_port_open,
    proxy_settings,
)


def settings_from(*argv: str) -> ProxySettings:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    add_common_arguments(parser, environ={})
    parser.add_argument("--log-level", default="info")
    return proxy_settings(parser.parse_args(["--upstream", "milvus:19530", *argv]))


@pytest.mark.parametrize(
    ("host", "token", "open_"),
    [
        ("127.0.0.1", None, False),
        ("127.0.0.2", None, False),
        ("::1", None, False),
        ("[::1]", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("10.1.2.3", None, True),
        ("proxy.example", None, True),  # a name may resolve to anything
        ("0.0.0.0", "a-token", False),
    ],
)
def test_internal_port_open(host: str, token: str | None, open_: bool) -> None:
    assert internal_port_open(host, token) is open_


def test_the_internal_port_listens_on_loopback_by_default() -> None:
    assert settings_from("--host", "0.0.0.0").internal_host == "127.0.0.1"


def test_off_loopback_without_a_token_is_refused_unless_insecure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--insecure-internal-port"):
        settings_from("--internal-host", "0.0.0.0")
    insecure = settings_from("--internal-host", "0.0.0.0", "--insecure-internal-port")
    assert insecure.insecure_internal_port
    token = tmp_path / "token"
    token.write_text("a-token\n")
    settings_from("--internal-host", "0.0.0.0", "--internal-token-file", str(token))


@pytest.mark.parametrize(
    "argv",
    [
        ["--rate-limit-user-total-burst", "10"],  # the default burst from one address is 10
        ["--rate-limit-user-total-per-second", "0.5"],
    ],
)
def test_a_user_total_one_address_could_use_up_is_refused(argv: list[str]) -> None:
    with pytest.raises(ConfigError, match="lock a user out"):
        settings_from(*argv)


def test_rate_limits_from_flags() -> None:
    limits = settings_from("--rate-limit-user-total-burst", "50").rate_limits
    assert (limits.user_burst, limits.user_total_burst, limits.user_total_per_second) == (
        10,
        50,
        10.0,
    )
    off = settings_from("--rate-limit-user-burst", "0").rate_limits
    assert (off.user_burst, off.user_total_burst) == (0, 100)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((), True),  # on whenever authentication is on, as Milvus ties them
        (("--authorization-enabled", "false"), False),
        (("--auth-enabled", "false"), False),
        (("--auth-enabled", "false", "--authorization-enabled", "true"), False),
    ],
)
def test_authorization_follows_authentication(argv: tuple[str, ...], expected: bool) -> None:
    settings = settings_from(*argv)
    assert settings.authorization_enabled is expected


def test_root_binds_roles_only_when_asked() -> None:
    assert settings_from().root_should_bind_role is False
    assert settings_from("--root-should-bind-role", "true").root_should_bind_role is True


def test_max_message_size_defaults_to_milvus_and_must_be_positive() -> None:
    assert settings_from().max_message_size == 64 * 1024 * 1024
    assert settings_from("--max-message-size", "1024").max_message_size == 1024
    for bad in ("0", "-1", str(2**31)):
        with pytest.raises(SystemExit):
            settings_from("--max-message-size", bad)
