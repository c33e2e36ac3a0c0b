"""The shared flag vocabulary: flags, MILVUS_AUTH_* variables, precedence, files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from milvus_auth.config import (
    ConfigError,
    add_common_arguments,
    common_settings,
    env_name,
    parse_bool,
    read_secret_file,
)
from milvus_auth.core import LayoutName
from milvus_auth.store import Endpoint


def parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, environ=environ or {})
    return parser.parse_args(argv)


def test_env_name() -> None:
    assert env_name("--etcd-endpoints") == "MILVUS_AUTH_ETCD_ENDPOINTS"


def test_defaults() -> None:
    settings = common_settings(parse([]))
    assert settings.etcd.endpoints == (Endpoint("127.0.0.1", 2379),)
    assert settings.layout.meta_root == "by-dev/meta"
    assert settings.layout.name is LayoutName.MILVUS
    assert settings.bcrypt_cost == 10


def test_environment_then_flags_win() -> None:
    environ = {"MILVUS_AUTH_ETCD_ENDPOINTS": "a:1,b:2", "MILVUS_AUTH_LAYOUT": "mep27"}
    from_env = common_settings(parse([], environ))
    assert from_env.etcd.endpoints == (Endpoint("a", 1), Endpoint("b", 2))
    assert from_env.layout.name is LayoutName.MEP27
    from_flags = common_settings(parse(["--etcd-endpoints", "c:3"], environ))
    assert from_flags.etcd.endpoints == (Endpoint("c", 3),)


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MILVUS_AUTH_BCRYPT_COST"):
        parse([], {"MILVUS_AUTH_BCRYPT_COST": "99"})


@pytest.mark.parametrize("text", ["http://10.0.0.1:2379", "10.0.0.1:2379/", "[::1]:2379"])
def test_endpoint_forms(text: str) -> None:
    endpoint = Endpoint.parse(text)
    assert endpoint.port == 2379


def test_etcd_password_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = common_settings(parse(["--etcd-user", "u", "--etcd-password-file", str(secret)]))
    assert settings.etcd.user == "u"
    assert settings.etcd.password == "s3cret"
    assert "s3cret" not in repr(settings)


def test_etcd_user_needs_password_file() -> None:
    with pytest.raises(ConfigError, match="go together"):
        common_settings(parse(["--etcd-user", "u"]))


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret_file(tmp_path / "absent")


@pytest.mark.parametrize(("text", "value"), [("true", True), ("Off", False), ("1", True)])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_rejects() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bool("maybe")


def test_tls_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--etcd-ca: .*absent\.pem is not a readable file"):
        common_settings(parse(["--etcd-ca", str(tmp_path / "absent.pem")]))
