"""`milvus-auth proxy`: the authenticating Milvus gateway, started from flags or MILVUS_AUTH_*.

Exit codes: 0 after a clean shutdown, 1 for a configuration problem (bad flag, unreadable file,
port in use, root bootstrap impossible), 2 when etcd cannot be reached at start. With
`--workers N` above 1 a supervisor runs the workers (proxy/workers/) and exits with the code of
a worker that fails to start.
"""

from __future__ import annotations

import argparse
from typing import Any

from milvus_auth.config import (
    add_common_arguments,
    add_log_level_argument,
    configure_logging,
)
from milvus_auth.proxy.config import add_proxy_arguments
from milvus_auth.proxy.startup import exit_code

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
