"""`milvus-auth proxy`: the authenticating Milvus gateway, started from flags or MILVUS_AUTH_*.

Exit codes: 0 after a clean shutdown, 1 for a configuration problem (bad flag, unreadable file,
port in use, root bootstrap impossible), 2 when etcd cannot be reached at start. With
`--workers N` above 1 a supervisor runs the workers (proxy/workers/) and exits with the code of
a worker that fails to start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from milvus_auth.config import (
    ConfigError,
    add_common_arguments,
    add_log_level_argument,
    configure_logging,
)
from milvus_auth.proxy.config import add_proxy_arguments

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_ETCD_UNAVAILABLE = 2

DESCRIPTION = (
    "Serve the Milvus gRPC API on --port, authenticate every call against the credential "
    "records in etcd (Milvus's own layout and hashes), and forward it to --upstream. The "
    "internal port serves Milvus's cache RPCs and gRPC health; keep it inside the cluster."
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `proxy` subcommand."""
    parser = commands.add_parser(
        "proxy", help="run the authenticating proxy", description=DESCRIPTION
    )
    add_proxy_arguments(parser)
    add_log_level_argument(parser)
    add_common_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the settings, run the proxy (or its workers) until SIGTERM/SIGINT, exit code."""
    # Imported here so other subcommands do not pay for grpc servers and pymilvus' protos.
    from milvus_auth.proxy.config import proxy_settings  # noqa: PLC0415
    from milvus_auth.proxy.server import serve  # noqa: PLC0415

    settings = proxy_settings(args)
    configure_logging(settings.log_level)
    if settings.workers > 1:
        from milvus_auth.proxy.workers.supervisor import supervise  # noqa: PLC0415

        return supervise(settings)
    return exit_code(lambda: serve(settings))


def exit_code(body: Callable[[], Coroutine[Any, Any, int | None]]) -> int:
    """Run `body` in a fresh event loop; print a start-up failure on stderr, map it to the exit
    code; otherwise the code `body` returns (None is 0)."""
    from milvus_auth.core import CredentialError  # noqa: PLC0415
    from milvus_auth.proxy.bootstrap import BootstrapError  # noqa: PLC0415
    from milvus_auth.store import EtcdUnavailable  # noqa: PLC0415

    try:
        code = asyncio.run(body())
    except (BootstrapError, CredentialError, ConfigError) as error:
        print(f"milvus-auth proxy: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (RuntimeError, OSError) as error:
        # grpc raises RuntimeError when a port cannot be bound; the metrics server OSError.
        print(f"milvus-auth proxy: cannot start: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except EtcdUnavailable as error:
        print(f"milvus-auth proxy: {error}", file=sys.stderr)
        return EXIT_ETCD_UNAVAILABLE
    return EXIT_OK if code is None else code
