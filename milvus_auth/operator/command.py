"""`milvus-auth operator`: run the MilvusUser operator against the current kubeconfig.

The cluster is found as kopf and kubectl find it: in-cluster service account, `KUBECONFIG`,
then `~/.kube/config`. Exit codes: 0 after a clean stop, 1 for bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from milvus_auth.config import add_log_level_argument, configure_logging
from milvus_auth.operator.config import add_arguments, build_config


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `operator` subcommand."""
    parser = commands.add_parser(
        "operator",
        help="reconcile MilvusUser resources into credential records and proxy caches",
        description="Reconcile MilvusUser resources (auth.milvus.io/v1alpha1) into Milvus "
        "credential records in etcd, and push every change to the proxies' caches.",
    )
    add_arguments(parser)
    add_log_level_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the settings, then run kopf until interrupted."""
    config = build_config(args)
    configure_logging(args.log_level)
    # kopf is imported here so that other subcommands start without it.
    from milvus_auth.operator.handlers import run_operator  # noqa: PLC0415
    from milvus_auth.operator.runtime import OperatorRuntime  # noqa: PLC0415

    asyncio.run(run_operator(OperatorRuntime(config)))
    return 0
