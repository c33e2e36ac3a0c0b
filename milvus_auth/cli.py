"""`milvus-auth`: one command; subcommands `users`, `roles`, `apikeys`, `proxy`, `operator`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from milvus_auth import __version__, apikeys, roles, users
from milvus_auth.config import ConfigError
from milvus_auth.operator import command as operator_command
from milvus_auth.proxy import command as proxy_command

EXIT_USER_ERROR = 1


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with 1 (a user error); 2 is reserved for "etcd unavailable".

    Abbreviated flags are off, so `--password secret` can never be taken for
    `--password-file secret` and echo a password back in an error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every subcommand included."""
    parser = _Parser(
        prog="milvus-auth",
        description="Milvus users as Kubernetes objects: credential records on etcd, an "
        "authenticating gRPC proxy and a MilvusUser operator. Every flag can also be set "
        "with a MILVUS_AUTH_<FLAG> environment variable; flags win.",
    )
    parser.add_argument("--version", action="version", version=f"milvus-auth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    # Each subcommand registers itself and keeps its heavy imports (grpc servers, kopf) inside
    # its run function, so `milvus-auth users` starts fast.
    users.register(commands)
    roles.register(commands)
    apikeys.register(commands)
    proxy_command.register(commands)
    operator_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `milvus-auth` console script."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args.run(args)
    except ConfigError as error:
        print(f"milvus-auth: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
