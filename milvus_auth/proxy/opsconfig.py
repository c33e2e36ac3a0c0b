"""The proxy's operations flags: TLS on the internal port and to the upstream, the bound on
failed-login log lines, and the access log (each with its `MILVUS_AUTH_*` variable).

Kept apart from config.py, which adds them to `milvus-auth proxy` and keeps the result in
`ProxySettings.ops`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.config import (
    ConfigError,
    add_option,
    parse_bool,
    parse_non_negative_float,
    parse_non_negative_int,
)
from milvus_auth.proxy.accesslog import AccessLogSettings
from milvus_auth.proxy.authn.loglimit import LogLimitSettings
from milvus_auth.tls import ClientTls, TlsSettings, client_tls, server_tls

INTERNAL_TLS_FLAGS = ("--internal-tls-cert", "--internal-tls-key", "--internal-tls-client-ca")
UPSTREAM_TLS_FLAGS = ("--upstream-ca", "--upstream-cert", "--upstream-key")


@dataclass(frozen=True)
class OpsSettings:
    """TLS of the internal port and the upstream hop, and what the proxy logs."""

    internal_tls: TlsSettings | None = None
    """TLS (mutual with a client CA) on the internal port; None: plain text."""
    upstream_tls: ClientTls | None = None
    """TLS to the upstream Milvus; None: plain text."""
    failed_login_log: LogLimitSettings = field(default_factory=LogLimitSettings)
    """How many failed-login lines are written per username and client address."""
    access_log: AccessLogSettings | None = None
    """The JSON access log; None: off."""


def add_ops_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags to `milvus-auth proxy`."""
    tls = parser.add_argument_group("TLS on the internal port and to the upstream")
    logs = parser.add_argument_group("failed-login lines and the access log")

    def option(group: argparse._ArgumentGroup, flag: str, **kwargs: Any) -> None:
        add_option(group, flag, **kwargs)  # type: ignore[arg-type]

    cert, key, client_ca = INTERNAL_TLS_FLAGS
    option(tls, cert, help="internal port TLS certificate (PEM)", metavar="PATH")
    option(tls, key, help=f"private key of {cert} (PEM)", metavar="PATH")
    option(
        tls,
        client_ca,
        help="CA for client certificates on the internal port (mutual TLS)",
        metavar="PATH",
    )
    option(
        tls, "--upstream-tls", help="TLS to the upstream Milvus", default="false", type=parse_bool
    )
    ca, cert, key = UPSTREAM_TLS_FLAGS
    option(
        tls,
        ca,
        help="CA bundle for the upstream's certificate (unset: system roots)",
        metavar="PATH",
    )
    option(
        tls,
        "--upstream-server-name",
        help="name the upstream's certificate must carry (unset: the --upstream host)",
    )
    option(tls, cert, help="client certificate for mutual TLS to the upstream", metavar="PATH")
    option(tls, key, help=f"private key of {cert}", metavar="PATH")
    defaults = LogLimitSettings()
    option(
        logs,
        "--failed-login-log-burst",
        help="failed-login log lines per username and per client address in each interval, "
        "then one summary line per pair; 0 = every failure",
        default=defaults.burst,
        type=parse_non_negative_int,
    )
    option(
        logs,
        "--failed-login-log-interval",
        help="seconds of one failed-login log interval",
        default=defaults.interval,
        type=parse_non_negative_float,
    )
    option(
        logs,
        "--access-log",
        help="write one JSON line per call to this file, or - for stdout (unset: off)",
        metavar="PATH",
    )
    option(
        logs,
        "--access-log-sample-rate",
        help="share of successful calls logged, 0..1 (failed calls always are)",
        default=1.0,
        type=_fraction,
    )
    option(
        logs,
        "--access-log-max-bytes",
        help="rotate the access log file at this size, 0 = never",
        default=AccessLogSettings.max_bytes,
        type=parse_non_negative_int,
    )
    option(
        logs,
        "--access-log-backups",
        help="rotated access log files kept",
        default=AccessLogSettings.backups,
        type=parse_non_negative_int,
    )


def ops_settings(args: argparse.Namespace) -> OpsSettings:
    """Build the settings from parsed flags; PEM files are read here."""
    upstream_flags = (args.upstream_ca, args.upstream_cert, args.upstream_key)
    if not args.upstream_tls and (any(upstream_flags) or args.upstream_server_name):
        raise ConfigError(
            "--upstream-ca, --upstream-cert, --upstream-key and --upstream-server-name "
            "need --upstream-tls"
        )
    if args.failed_login_log_interval <= 0:
        raise ConfigError("--failed-login-log-interval must be more than 0 seconds")
    return OpsSettings(
        internal_tls=server_tls(
            INTERNAL_TLS_FLAGS,
            args.internal_tls_cert,
            args.internal_tls_key,
            args.internal_tls_client_ca,
        ),
        upstream_tls=client_tls(UPSTREAM_TLS_FLAGS, *upstream_flags, args.upstream_server_name)
        if args.upstream_tls
        else None,
        failed_login_log=LogLimitSettings(
            burst=args.failed_login_log_burst, interval=args.failed_login_log_interval
        ),
        access_log=AccessLogSettings(
            destination=args.access_log,
            sample_rate=args.access_log_sample_rate,
            max_bytes=args.access_log_max_bytes,
            backups=args.access_log_backups,
        )
        if args.access_log
        else None,
    )


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be 0..1, got {text}")
    return value
