"""`milvus-auth operator` flags (each with its `MILVUS_AUTH_*` variable) and its settings object."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from milvus_auth.config import (
    CommonSettings,
    ConfigError,
    add_common_arguments,
    add_option,
    common_settings,
    parse_bool,
    parse_names,
    read_secret_file,
)
from milvus_auth.operator.permissions import parse_namespace_databases
from milvus_auth.tls import ClientTls, client_tls

PROXY_TLS_FLAGS = ("--proxy-tls-ca", "--proxy-tls-cert", "--proxy-tls-key")

DEFAULT_RESYNC_PERIOD = 300.0
DEFAULT_PROXY_TIMEOUT = 2.0
DEFAULT_PEERING_LIFETIME = 15
# Priorities fall as start times rise (microseconds, so two pods never tie: kopf pauses every
# operator of a tied priority), and stay below 2**53 so every JSON reader keeps them exact.
_PRIORITY_CEILING = 2**53


def start_priority(started: float) -> int:
    """The kopf peering priority of an operator started at `started` (Unix seconds)."""
    return _PRIORITY_CEILING - int(started * 1_000_000)


@dataclass(frozen=True)
class ServiceRef:
    """The proxies' internal Service, whose EndpointSlices list the proxy pods."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ServiceRef:
        """`namespace/name`."""
        namespace, sep, name = text.strip().partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise argparse.ArgumentTypeError(f"expected namespace/name, got {text!r}")
        return cls(namespace, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator process needs, built once from flags and environment."""

    common: CommonSettings
    """etcd, key layout and bcrypt cost, shared with the other subcommands."""
    proxy_service: ServiceRef | None = None
    """Where to find the proxies to notify; None means there are no proxies to notify."""
    internal_token: str | None = field(default=None, repr=False)
    """Sent as gRPC metadata on the proxies' internal port, when the proxies require it."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (exact names); empty with `all_namespaces` means the whole cluster."""
    all_namespaces: bool = False
    """Watch MilvusUsers and labelled Secrets in every namespace."""
    resync_period: float = DEFAULT_RESYNC_PERIOD
    """Seconds between level-based re-checks of each user (unlabelled Secrets, drift)."""
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT
    """Seconds one cache RPC to one proxy may take."""
    liveness: str | None = None
    """kopf's liveness endpoint URL, e.g. `http://0.0.0.0:8080/healthz`."""
    metrics_port: int | None = None
    """Port of the Prometheus metrics endpoint; None disables it."""
    peering: str | None = None
    """kopf peering name for hot standby; None runs standalone."""
    peering_priority: int = field(default_factory=lambda: start_priority(time.time()))
    """Among peered operators the highest priority is active; by default the one that
    started first, so a new pod joins as a standby and never preempts the active one."""
    peering_lifetime: int = DEFAULT_PEERING_LIFETIME
    """Seconds a silent peer is still taken as alive: how long a standby waits after the
    active operator died without a goodbye (a clean stop hands over at once)."""
    kubeconfig: str | None = None
    """An explicit kubeconfig file; None finds the cluster as kopf and kubectl do."""
    privileged_namespaces: frozenset[str] = frozenset()
    """Namespaces whose MilvusUsers may set allowRoot or adopt users the operator did not
    create; by default the operator's own namespace (none outside a cluster)."""
    namespace_databases: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Per listed namespace, the only databases its MilvusRoles may grant on (never `*`)."""
    proxy_tls: ClientTls | None = None
    """TLS to the proxies' internal port; None: plain text."""


class _Namespaces(argparse.Action):
    """Repeatable and comma-separated; the first flag on the command line replaces the env list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = list(getattr(namespace, "_namespaces_from_cli", []))
        given.extend(parse_names(str(values)))
        namespace._namespaces_from_cli = given
        setattr(namespace, self.dest, ",".join(given))


def add_arguments(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """The operator's own flags plus the shared etcd ones."""
    add_common_arguments(parser, environ)
    group = parser.add_argument_group("operator")

    def option(flag: str, **kwargs: Any) -> None:
        add_option(group, flag, environ=environ, **kwargs)  # type: ignore[arg-type]

    option(
        "--proxy-service",
        help="the proxies' internal Service as namespace/name (its EndpointSlices' port named "
        "`internal` are the proxies to notify); unset means no proxies",
        type=ServiceRef.parse,
        metavar="NAMESPACE/NAME",
    )
    option(
        "--internal-token-file",
        help="file holding the token the proxies' internal port requires",
        metavar="PATH",
    )
    option(
        "--namespace",
        help="namespace to watch; repeat or comma-separate for several",
        default="",
        action=_Namespaces,
        metavar="NS",
    )
    option("--all-namespaces", help="watch every namespace", default=False, type=parse_bool)
    option(
        "--resync-period",
        help="seconds between re-checks of every user (picks up unlabelled Secrets and drift)",
        default=DEFAULT_RESYNC_PERIOD,
        type=float,
    )
    option(
        "--proxy-timeout",
        help="seconds one cache update RPC to one proxy may take",
        default=DEFAULT_PROXY_TIMEOUT,
        type=float,
    )
    option("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz", metavar="URL")
    option("--metrics-port", help="serve Prometheus metrics on this port", type=int)
    option("--peering", help="kopf peering name for hot standby (unset: standalone)")
    option(
        "--peering-priority",
        help="this operator's kopf peering priority; the highest live one is active (unset: "
        "derived from the start time, so the longest-running operator stays active)",
        type=int,
    )
    option(
        "--peering-lifetime",
        help="seconds a peer that stopped sending keep-alives still counts as alive: the "
        "standby's takeover delay after the active operator dies",
        default=DEFAULT_PEERING_LIFETIME,
        type=int,
    )
    option(
        "--privileged-namespaces",
        help="comma-separated namespaces whose MilvusUsers may set allowRoot or adopt a Milvus "
        "user the operator did not create (unset: the operator's own namespace, "
        "--operator-namespace; empty: none)",
        metavar="NS,...",
    )
    option(
        "--namespace-databases",
        help="confine the MilvusRole grants of listed namespaces to their databases, e.g. "
        "team-a=analytics,shared;team-b=ml (no *; unlisted namespaces are not confined)",
        metavar="NS=DB,...;...",
    )
    option(
        "--operator-namespace",
        help="the namespace the operator runs in (the chart passes it from the downward API); "
        "the default privileged namespace",
        metavar="NS",
    )
    ca, cert, key = PROXY_TLS_FLAGS
    option(
        ca, help="CA of the proxies' internal port certificate: connect with TLS", metavar="PATH"
    )
    option(
        "--proxy-tls-server-name",
        help="name the proxies' certificate carries (the operator dials pod addresses), e.g. "
        "the internal Service's DNS name",
    )
    option(cert, help="client certificate for mutual TLS to the proxies", metavar="PATH")
    option(key, help=f"private key of {cert}", metavar="PATH")
    option(
        "--kubeconfig",
        help="kubeconfig file (unset: in-cluster service account, then $KUBECONFIG, "
        "then ~/.kube/config)",
        metavar="PATH",
    )


def build_config(args: argparse.Namespace) -> OperatorConfig:
    """Check the flags together and read the token file; raise `ConfigError` on bad input."""
    namespaces = tuple(sorted(parse_names(args.namespace or "")))
    if bool(namespaces) == bool(args.all_namespaces):
        raise ConfigError("give either --namespace NS (one or more) or --all-namespaces true")
    if any(char in name for name in namespaces for char in "*?![]"):
        raise ConfigError("--namespace takes exact names, not patterns")
    if args.resync_period <= 0 or args.proxy_timeout <= 0:
        raise ConfigError("--resync-period and --proxy-timeout must be positive")
    if args.peering_lifetime < 2:
        raise ConfigError("--peering-lifetime must be at least 2 seconds")
    if args.kubeconfig and not Path(args.kubeconfig).is_file():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
    privileged = args.privileged_namespaces
    if privileged is None:
        privileged = args.operator_namespace or ""
    privileged_namespaces = parse_names(privileged)
    if any(char in name for name in privileged_namespaces for char in "*?![]"):
        raise ConfigError("--privileged-namespaces takes exact names, not patterns")
    try:
        namespace_databases = parse_namespace_databases(args.namespace_databases or "")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    tls_flags = (args.proxy_tls_cert, args.proxy_tls_key, args.proxy_tls_server_name)
    if any(tls_flags) and not args.proxy_tls_ca:
        raise ConfigError(
            "--proxy-tls-cert, --proxy-tls-key and --proxy-tls-server-name need --proxy-tls-ca"
        )
    token = read_secret_file(args.internal_token_file) if args.internal_token_file else None
    if token is not None and not token:
        raise ConfigError(f"{args.internal_token_file} is empty")
    return OperatorConfig(
        common=common_settings(args),
        proxy_service=args.proxy_service,
        internal_token=token,
        namespaces=namespaces,
        all_namespaces=bool(args.all_namespaces),
        resync_period=args.resync_period,
        proxy_timeout=args.proxy_timeout,
        liveness=args.liveness or None,
        metrics_port=args.metrics_port,
        peering=args.peering or None,
        peering_priority=(
            start_priority(time.time()) if args.peering_priority is None else args.peering_priority
        ),
        peering_lifetime=args.peering_lifetime,
        kubeconfig=args.kubeconfig or None,
        privileged_namespaces=privileged_namespaces,
        namespace_databases=namespace_databases,
        proxy_tls=client_tls(
            PROXY_TLS_FLAGS,
            args.proxy_tls_ca,
            args.proxy_tls_cert,
            args.proxy_tls_key,
            args.proxy_tls_server_name,
        )
        if args.proxy_tls_ca
        else None,
    )
