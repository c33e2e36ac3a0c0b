"""`milvus-auth operator` flags: MILVUS_AUTH_* variables, namespaces, checks, the token file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from milvus_auth.cli import build_parser, main
from milvus_auth.config import ConfigError
from milvus_auth.operator.config import ServiceRef, add_arguments, build_config, start_priority


def parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, environ=environ or {})
    return parser.parse_args(argv)


def test_defaults_with_one_namespace() -> None:
    config = build_config(parse(["--namespace", "milvus"]))
    assert config.namespaces == ("milvus",)
    assert not config.all_namespaces
    assert config.resync_period == 300.0
    assert config.proxy_service is None
    assert config.internal_token is None
    assert config.peering is None
    assert config.common.bcrypt_cost == 10


def test_namespaces_repeat_and_comma_separate() -> None:
    config = build_config(parse(["--namespace", "a,b", "--namespace", "c"]))
    assert config.namespaces == ("a", "b", "c")


def test_environment_then_flags_win() -> None:
    environ = {
        "MILVUS_AUTH_NAMESPACE": "x,y",
        "MILVUS_AUTH_PROXY_SERVICE": "milvus/proxy-internal",
        "MILVUS_AUTH_RESYNC_PERIOD": "60",
    }
    from_env = build_config(parse([], environ))
    assert from_env.namespaces == ("x", "y")
    assert from_env.proxy_service == ServiceRef("milvus", "proxy-internal")
    assert from_env.resync_period == 60.0
    flags = build_config(parse(["--namespace", "z", "--resync-period", "5"], environ))
    assert flags.namespaces == ("z",)
    assert flags.resync_period == 5.0


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, frozenset()),  # outside a cluster: none unless given
        ([], {"MILVUS_AUTH_OPERATOR_NAMESPACE": "milvus"}, {"milvus"}),  # the downward API
        (["--privileged-namespaces", "ops,platform"], {}, {"ops", "platform"}),
        (
            [],
            {
                "MILVUS_AUTH_OPERATOR_NAMESPACE": "milvus",
                "MILVUS_AUTH_PRIVILEGED_NAMESPACES": "ops",
            },
            {"ops"},
        ),
        (["--privileged-namespaces", ""], {"MILVUS_AUTH_OPERATOR_NAMESPACE": "milvus"}, set()),
    ],
)
def test_privileged_namespaces_default_to_the_operators_own(
    argv: list[str], environ: dict[str, str], expected: set[str]
) -> None:
    config = build_config(parse(["--namespace", "a", *argv], environ))
    assert config.privileged_namespaces == expected


def test_namespace_databases_from_the_environment() -> None:
    environ = {"MILVUS_AUTH_NAMESPACE_DATABASES": "team-a=analytics,shared;team-b=ml"}
    config = build_config(parse(["--namespace", "a"], environ))
    assert config.namespace_databases == {
        "team-a": frozenset({"analytics", "shared"}),
        "team-b": frozenset({"ml"}),
    }
    assert build_config(parse(["--namespace", "a"])).namespace_databases == {}


def test_all_namespaces() -> None:
    config = build_config(parse(["--all-namespaces", "true"]))
    assert config.all_namespaces
    assert config.namespaces == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "either --namespace"),
        (["--namespace", "a", "--all-namespaces", "true"], "either --namespace"),
        (["--namespace", "team-*"], "exact names"),
        (["--namespace", "a", "--resync-period", "0"], "must be positive"),
        (["--namespace", "a", "--privileged-namespaces", "ops-*"], "exact names"),
        (["--namespace", "a", "--namespace-databases", "team=*"], "--namespace-databases"),
        (["--namespace", "a", "--peering-lifetime", "1"], "at least 2 seconds"),
    ],
)
def test_refused_combinations(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(parse(argv))


def test_peering_priority_ranks_the_earliest_started_operator_highest() -> None:
    earlier = build_config(parse(["--namespace", "a", "--peering", "p"]))
    later = build_config(parse(["--namespace", "a", "--peering", "p"]))
    assert earlier.peering_priority > later.peering_priority
    assert start_priority(1_800_000_000.0) > start_priority(1_800_000_000.000001)
    assert 0 < start_priority(4_000_000_000.0) < 2**53  # exact in every JSON reader
    assert earlier.peering_lifetime == 15
    chosen = parse(["--namespace", "a", "--peering-priority", "100", "--peering-lifetime", "5"])
    assert (build_config(chosen).peering_priority, build_config(chosen).peering_lifetime) == (
        100,
        5,
    )


def test_bad_proxy_service_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        parse(["--proxy-service", "no-namespace"])


def test_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    config = build_config(parse(["--namespace", "a", "--internal-token-file", str(token)]))
    assert config.internal_token == "s3cret"
    assert "s3cret" not in repr(config)
    token.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        build_config(parse(["--namespace", "a", "--internal-token-file", str(token)]))


def test_operator_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["operator", "--namespace", "a", "--log-level", "DEBUG"])
    assert args.log_level == "debug"
    assert callable(args.run)


def test_bad_flags_exit_with_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "--all-namespaces", "false"]) == 1
    assert "either --namespace" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no such file"), ("{}", "current-context")]
)
def test_a_broken_kubeconfig_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    assert main(["operator", "--namespace", "a", "--kubeconfig", str(kubeconfig)]) == 1
    assert message in capsys.readouterr().err


def test_proxy_tls_flags_read_their_files(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    config = build_config(parse(["--namespace", "m"]))
    assert config.proxy_tls is None
    environ = {"MILVUS_AUTH_PROXY_TLS_CA": str(pem), "MILVUS_AUTH_PROXY_TLS_SERVER_NAME": "p.m.svc"}
    config = build_config(parse(["--namespace", "m"], environ))
    assert config.proxy_tls is not None
    assert config.proxy_tls.ca == pem.read_bytes()
    assert config.proxy_tls.server_name == "p.m.svc"
    assert config.proxy_tls.certificate is None
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret-key-material\n")
    both = ["--proxy-tls-cert", str(pem), "--proxy-tls-key", str(key)]
    config = build_config(parse(["--namespace", "m", "--proxy-tls-ca", str(pem), *both]))
    assert config.proxy_tls is not None
    assert config.proxy_tls.private_key == key.read_bytes()
    assert "secret-key-material" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--proxy-tls-cert", "c.pem"], "need --proxy-tls-ca"),
        (["--proxy-tls-server-name", "x"], "need --proxy-tls-ca"),
        (["--proxy-tls-ca", "/nonexistent/ca.pem"], "--proxy-tls-ca: cannot read /nonexistent"),
        (["--proxy-tls-ca", "{pem}", "--proxy-tls-cert", "{pem}"], "go together"),
        (["--proxy-tls-ca", "{text}"], "--proxy-tls-ca: {text} is not a PEM file"),
    ],
)
def test_proxy_tls_flags_that_cannot_work(tmp_path: Path, argv: list[str], message: str) -> None:
    pem, text = tmp_path / "ca.pem", tmp_path / "plain.txt"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    text.write_text("plain\n")
    filled = [part.format(pem=pem, text=text) for part in argv]
    with pytest.raises(ConfigError) as refused:
        build_config(parse(["--namespace", "m", *filled]))
    assert message.format(text=text) in str(refused.value)
