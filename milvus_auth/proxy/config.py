"""`milvus-auth proxy` flags and the one frozen `ProxySettings` built from them at start.

Every flag has a `MILVUS_AUTH_*` variable (see milvus_auth.config.add_option); secrets come
from files, never from flags, and are read here so a bad file stops the start with its name.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from milvus_auth.config import (
    CommonSettings,
    ConfigError,
    add_option,
    common_settings,
    parse_bool,
    parse_bounded,
    parse_names,
    parse_non_negative_float,
    parse_non_negative_int,
    read_secret_file,
)
from milvus_auth.proxy.authn.ratelimit import RateLimitSettings
from milvus_auth.proxy.opsconfig import OpsSettings, add_ops_arguments, ops_settings
from milvus_auth.proxy.workers.cpus import available_cpus
from milvus_auth.tls import TlsSettings, server_tls

log = logging.getLogger(__name__)

# A count gRPC and the kernel take as a C int (worker processes, message bytes).
_POSITIVE_INT = parse_bounded(1, 2**31 - 1)


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy process needs, fixed at start."""

    common: CommonSettings
    """etcd, key layout and bcrypt cost, shared with the other subcommands."""
    upstream: str
    """The Milvus the proxy forwards to, host:port."""
    host: str = "0.0.0.0"
    """Address the public port (and metrics) listen on."""
    port: int = 19530
    """Public Milvus port (authenticated)."""
    internal_host: str = "127.0.0.1"
    """Address the internal port listens on."""
    internal_port: int = 19529
    """Milvus's internal cache-RPC port plus gRPC health; never expose it."""
    insecure_internal_port: bool = False
    """Accept an internal port off loopback without a token (warned about at start)."""
    auth_enabled: bool = True
    """False: every header is ignored and every call passes, as Milvus with auth off."""
    authorization_enabled: bool = True
    """Check Milvus's privileges on every call (only with authentication on); False keeps
    authentication alone (warned about at start)."""
    root_should_bind_role: bool = False
    """Root is checked like any user (its roles plus `public`), Milvus's rootShouldBindRole."""
    root_password: str | None = field(default=None, repr=False)
    """Initial root password, used only when etcd has no root record."""
    super_users: frozenset[str] = frozenset()
    """Users who manage users and change passwords without the old one."""
    internal_token: str | None = field(default=None, repr=False)
    """Token every internal-port cache RPC must carry, when set."""
    upstream_token: str | None = field(default=None, repr=False)
    """`user:password` sent upstream instead of the caller's `authorization`, when set."""
    metrics_port: int = 0
    """Prometheus metrics port; 0 turns metrics off."""
    tls: TlsSettings | None = None
    """TLS on the public port, when configured."""
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    """Failed-login limits per username and per client address."""
    shutdown_grace: float = 10.0
    """Seconds in-flight calls get to finish after SIGTERM."""
    ops: OpsSettings = field(default_factory=OpsSettings)
    """TLS of the internal port and the upstream hop, failed-login lines, the access log."""
    workers: int = 1
    """Processes serving the public port; above 1 a supervisor runs them (proxy/workers/)."""
    max_message_size: int = 64 * 1024 * 1024
    """Largest request accepted, in bytes: the upstream Milvus's proxy.grpc.serverMaxRecvSize."""
    log_level: str = "info"
    """Python logging level name."""


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    """The proxy's own flags (the shared etcd flags are added by add_common_arguments)."""
    group = parser.add_argument_group("proxy")

    def option(flag: str, **kwargs: Any) -> None:
        add_option(group, flag, **kwargs)  # type: ignore[arg-type]

    option("--upstream", help="the Milvus to forward to, host:port (required)", metavar="HOST:PORT")
    option("--host", help="address the ports listen on", default="0.0.0.0")
    option("--port", help="public Milvus port", default=19530, type=_port)
    option("--internal-host", help="address the internal port listens on", default="127.0.0.1")
    option("--internal-port", help="internal cache-RPC and health port", default=19529, type=_port)
    option("--auth-enabled", help="check credentials (true|false)", default="true", type=parse_bool)
    option(
        "--authorization-enabled",
        help="check Milvus privileges on every call (true|false; default: as --auth-enabled)",
        type=parse_bool,
    )
    option(
        "--root-should-bind-role",
        help="check root's privileges like any user's (true|false)",
        default="false",
        type=parse_bool,
    )
    option("--root-password-file", help="initial root password, if root has none", metavar="PATH")
    option("--super-users", help="comma-separated super users", type=parse_names)
    option("--internal-token-file", help="token required on the internal port", metavar="PATH")
    option(
        "--insecure-internal-port",
        help="allow the internal port off loopback without a token",
        default="false",
        type=parse_bool,
        nargs="?",
        const=True,
    )
    option("--upstream-token-file", help="user:password for an upstream with auth", metavar="PATH")
    option("--metrics-port", help="Prometheus metrics port, 0 = off", default=0, type=_port)
    option("--tls-cert", help="public port TLS certificate (PEM)", metavar="PATH")
    option("--tls-key", help="private key of --tls-cert (PEM)", metavar="PATH")
    option("--tls-client-ca", help="CA for client certificates (mutual TLS)", metavar="PATH")
    defaults = RateLimitSettings()
    option(
        "--rate-limit-user-burst",
        help="failed logins per user from one client address before limiting, 0 = off",
        default=defaults.user_burst,
        type=parse_non_negative_int,
    )
    option(
        "--rate-limit-user-per-second",
        help="failed logins per second per user from one client address once limited",
        default=defaults.user_per_second,
        type=parse_non_negative_float,
    )
    option(
        "--rate-limit-user-total-burst",
        help="failed logins per user from all addresses before limiting, 0 = off",
        default=defaults.user_total_burst,
        type=parse_non_negative_int,
    )
    option(
        "--rate-limit-user-total-per-second",
        help="failed logins per second per user from all addresses once limited",
        default=defaults.user_total_per_second,
        type=parse_non_negative_float,
    )
    option(
        "--rate-limit-peer-burst",
        help="failed logins per client address, 0 = off",
        default=defaults.peer_burst,
        type=parse_non_negative_int,
    )
    option(
        "--rate-limit-peer-per-second",
        help="failed logins per second per client address",
        default=defaults.peer_per_second,
        type=parse_non_negative_float,
    )
    option(
        "--workers",
        help="processes serving the public port (default: the CPUs this process may use, "
        "from its cgroup CPU limit, else its affinity mask)",
        type=_POSITIVE_INT,
    )
    option(
        "--max-message-size",
        help="largest request in bytes, as the upstream's proxy.grpc.serverMaxRecvSize",
        default=64 * 1024 * 1024,
        type=_POSITIVE_INT,
    )
    option(
        "--shutdown-grace",
        help="seconds in-flight calls get after SIGTERM",
        default=10.0,
        type=parse_non_negative_float,
    )
    add_ops_arguments(parser)


def proxy_settings(args: argparse.Namespace) -> ProxySettings:
    """Build the settings from parsed flags; files are read here."""
    if not args.upstream:
        raise ConfigError("--upstream host:port is required (env MILVUS_AUTH_UPSTREAM)")
    _check_address(args.upstream)
    internal_token = _secret(args.internal_token_file, non_empty="--internal-token-file")
    if internal_port_open(args.internal_host, internal_token) and not args.insecure_internal_port:
        raise ConfigError(
            f"--internal-host {args.internal_host} is not a loopback address and no "
            "--internal-token-file is set: anyone reaching the internal port could make any "
            "password work (UpdateCredentialCache). Set --internal-token-file, keep "
            "--internal-host 127.0.0.1, or accept the risk with --insecure-internal-port"
        )
    return ProxySettings(
        common=common_settings(args),
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        internal_host=args.internal_host,
        internal_port=args.internal_port,
        insecure_internal_port=args.insecure_internal_port,
        auth_enabled=args.auth_enabled,
        authorization_enabled=args.auth_enabled
        and (args.authorization_enabled is None or args.authorization_enabled),
        root_should_bind_role=args.root_should_bind_role,
        root_password=_secret(args.root_password_file),
        super_users=args.super_users or frozenset(),
        internal_token=internal_token,
        upstream_token=_secret(args.upstream_token_file, non_empty="--upstream-token-file"),
        metrics_port=args.metrics_port,
        tls=server_tls(
            ("--tls-cert", "--tls-key", "--tls-client-ca"),
            args.tls_cert,
            args.tls_key,
            args.tls_client_ca,
        ),
        rate_limits=_rate_limits(
            RateLimitSettings(
                user_burst=args.rate_limit_user_burst,
                user_per_second=args.rate_limit_user_per_second,
                user_total_burst=args.rate_limit_user_total_burst,
                user_total_per_second=args.rate_limit_user_total_per_second,
                peer_burst=args.rate_limit_peer_burst,
                peer_per_second=args.rate_limit_peer_per_second,
            )
        ),
        shutdown_grace=args.shutdown_grace,
        workers=args.workers or available_cpus(),
        max_message_size=args.max_message_size,
        log_level=args.log_level,
        ops=ops_settings(args),
    )


def internal_port_open(host: str, token: str | None) -> bool:
    """Whether other machines could call the cache RPCs without a token.

    Only an address that is loopback by itself counts as closed: a host name other than
    `localhost` may resolve to anything.
    """
    if token is not None or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True


def warn_about_settings(settings: ProxySettings, internal_port: int) -> None:
    """Log the start-up warnings about risky settings (once per proxy, workers or not)."""
    if internal_port_open(settings.internal_host, settings.internal_token):
        log.warning(
            "insecure internal port %s:%d (--insecure-internal-port): it has no token, so "
            "anyone who reaches it can make any password work for any user",
            settings.internal_host,
            internal_port,
        )
    if settings.auth_enabled and not settings.authorization_enabled:
        log.warning(
            "authorization is off (--authorization-enabled false): every authenticated "
            "user may call every method, unlike a Milvus with authentication on"
        )


def _rate_limits(limits: RateLimitSettings) -> RateLimitSettings:
    """The limits, unless one client address could use up a user's total alone."""
    if (
        limits.user_total_burst
        and limits.user_burst
        and (
            limits.user_total_burst <= limits.user_burst
            or limits.user_total_per_second <= limits.user_per_second
        )
    ):
        raise ConfigError(
            "--rate-limit-user-total-burst and -per-second must exceed --rate-limit-user-burst "
            "and -per-second: otherwise one client address could lock a user out for everyone"
        )
    return limits


def _secret(path: str | None, *, non_empty: str | None = None) -> str | None:
    if not path:
        return None
    value = read_secret_file(path)
    if non_empty is not None and not value:
        raise ConfigError(f"{non_empty}: {path} is empty")
    return value


def _check_address(text: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--upstream must be host:port, got {text!r}")


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {port}")
    return port
