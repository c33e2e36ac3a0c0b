"""The configuration vocabulary every subcommand shares: flags, `MILVUS_AUTH_*` variables, files.

Each flag has an environment variable named after it (`--etcd-endpoints` is read from
`MILVUS_AUTH_ETCD_ENDPOINTS`); a flag given on the command line wins. This module is the only
place that reads the environment; each process builds one frozen settings object from it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from milvus_auth.core import DEFAULT_BCRYPT_COST, DEFAULT_META_ROOT, KeyLayout, LayoutName
from milvus_auth.core.credentials import (
    DEFAULT_MAX_USERS,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
)
from milvus_auth.core.hashing import MAX_BCRYPT_COST, MIN_BCRYPT_COST
from milvus_auth.core.passwords import CLASS_NAMES, MAX_SCORE, PasswordPolicy
from milvus_auth.store import Endpoint, EtcdSettings

ENV_PREFIX = "MILVUS_AUTH_"


class ConfigError(Exception):
    """A flag, variable or file that cannot be used; the message says which and why."""


def env_name(flag: str) -> str:
    """`--etcd-endpoints` -> `MILVUS_AUTH_ETCD_ENDPOINTS`."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Add a flag whose default comes from its `MILVUS_AUTH_*` variable, then from `default`."""
    variable = env_name(flag)
    source = os.environ if environ is None else environ
    if variable in source:
        # Checked here so the error names the variable; argparse converts string defaults.
        default = source[variable]
        try:
            type(default)
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise ConfigError(f"{variable}: {error}") from error
    shown = "" if default is None else f", default {default}"
    if type is parse_bool:
        # As kopf and kubectl users type them: a bare `--flag` is true; `--flag=false`,
        # `--flag false` and the variable still work.
        kwargs = {"nargs": "?", "const": True, "metavar": "BOOL", **kwargs}
    parser.add_argument(
        flag, default=default, type=type, help=f"{help} (env {variable}{shown})", **kwargs
    )


def parse_bool(text: str) -> bool:
    """`true/false`, `yes/no`, `1/0`, `on/off`, case-insensitive."""
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_non_negative_int(text: str) -> int:
    """A whole number, 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_non_negative_float(text: str) -> float:
    """A number, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """`host:port[,host:port...]`."""
    try:
        return tuple(Endpoint.parse(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_cost(text: str) -> int:
    """A bcrypt cost between 4 and 31."""
    cost = int(text)
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        raise argparse.ArgumentTypeError(
            f"bcrypt cost must be {MIN_BCRYPT_COST}..{MAX_BCRYPT_COST}, got {cost}"
        )
    return cost


def parse_names(text: str) -> frozenset[str]:
    """A comma-separated list of names."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def read_secret_file(path: str | Path) -> str:
    """A password or token from a file (`-` is stdin), without its trailing newline."""
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text") from error
    return text.rstrip("\r\n")


@dataclass(frozen=True)
class CommonSettings:
    """What every subcommand needs to read and write credential records."""

    etcd: EtcdSettings
    layout: KeyLayout
    bcrypt_cost: int
    password_policy: PasswordPolicy = field(default_factory=PasswordPolicy)
    """What every new password must satisfy (Milvus's own rule by default)."""
    max_users: int = DEFAULT_MAX_USERS
    """Most users a create may leave in etcd (Milvus's `proxy.maxUserNum`), root included."""


def add_common_arguments(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """The etcd, layout and hashing flags shared by `users`, `proxy` and `operator`."""
    group = parser.add_argument_group("etcd and credential records")
    option = _grouped(group, environ)
    option(
        "--etcd-endpoints",
        help="etcd members, host:port[,host:port...]",
        default="127.0.0.1:2379",
        type=parse_endpoints,
        metavar="HOST:PORT,...",
    )
    option("--etcd-user", help="etcd user, when etcd has authentication on")
    option("--etcd-password-file", help="file holding the etcd user's password", metavar="PATH")
    option("--etcd-ca", help="CA bundle for TLS to etcd", metavar="PATH")
    option("--etcd-cert", help="client certificate for mutual TLS to etcd", metavar="PATH")
    option("--etcd-key", help="private key of --etcd-cert", metavar="PATH")
    option("--etcd-timeout", help="seconds any etcd call may take", default=5.0, type=float)
    option("--meta-root", help="Milvus's etcd rootPath/metaSubPath", default=DEFAULT_META_ROOT)
    option(
        "--layout",
        help="credential key layout: milvus or mep27",
        default=LayoutName.MILVUS,
        type=LayoutName,
        choices=list(LayoutName),
    )
    option(
        "--bcrypt-cost",
        help="bcrypt cost of new hashes",
        default=DEFAULT_BCRYPT_COST,
        type=parse_cost,
    )
    option(
        "--max-users",
        help="most users etcd may hold: a create beyond it is refused, atomically across "
        "every proxy, the operator and this CLI (Milvus's proxy.maxUserNum; root counts)",
        default=DEFAULT_MAX_USERS,
        type=parse_bounded(1, 1_000_000),
    )
    policy = parser.add_argument_group("password policy (new passwords only)")
    option = _grouped(policy, environ)
    option(
        "--password-min-length",
        help=f"fewest UTF-8 bytes in a new password (Milvus's minimum is {MIN_PASSWORD_LENGTH})",
        default=MIN_PASSWORD_LENGTH,
        type=parse_bounded(MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH),
    )
    option(
        "--password-min-classes",
        help=f"fewest kinds of characters among {', '.join(CLASS_NAMES)}",
        default=0,
        type=parse_bounded(0, len(CLASS_NAMES)),
    )
    option(
        "--password-min-score",
        help=f"least zxcvbn strength score 0..{MAX_SCORE}, which also refuses passwords "
        "containing the username; off when not given",
        type=parse_bounded(0, MAX_SCORE),
    )


def parse_bounded(low: int, high: int) -> Callable[[str], int]:
    """A parser of whole numbers from `low` to `high`."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse


def _grouped(
    group: argparse._ArgumentGroup, environ: Mapping[str, str] | None
) -> Callable[..., None]:
    def option(flag: str, **kwargs: Any) -> None:
        add_option(group, flag, environ=environ, **kwargs)  # type: ignore[arg-type]

    return option


def common_settings(args: argparse.Namespace) -> CommonSettings:
    """Build the shared settings from parsed flags; secrets are read from their files here."""
    if bool(args.etcd_user) != bool(args.etcd_password_file):
        raise ConfigError("--etcd-user and --etcd-password-file go together")
    if bool(args.etcd_cert) != bool(args.etcd_key):
        raise ConfigError("--etcd-cert and --etcd-key go together")
    password = read_secret_file(args.etcd_password_file) if args.etcd_password_file else None
    etcd = EtcdSettings(
        endpoints=args.etcd_endpoints,
        user=args.etcd_user or None,
        password=password,
        ca_file=_path("--etcd-ca", args.etcd_ca),
        cert_file=_path("--etcd-cert", args.etcd_cert),
        key_file=_path("--etcd-key", args.etcd_key),
        timeout=args.etcd_timeout,
    )
    return CommonSettings(
        etcd=etcd,
        layout=KeyLayout(args.layout, args.meta_root),
        bcrypt_cost=args.bcrypt_cost,
        max_users=args.max_users,
        password_policy=PasswordPolicy(
            min_length=args.password_min_length,
            min_classes=args.password_min_classes,
            min_score=args.password_min_score,
        ),
    )


def _path(flag: str, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{flag}: {value} is not a readable file")
    return path


LOG_LEVELS = ("debug", "info", "warning", "error")


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """`--log-level` for the long-running subcommands; any case is accepted."""
    add_option(
        parser,
        "--log-level",
        help="debug, info, warning or error",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
    )


def configure_logging(level: str) -> None:
    """One log format for every process: timestamp, level, logger, message, on stderr."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
