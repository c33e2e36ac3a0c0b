"""How the etcd subcommands (`users`, `roles`) end: one exit code per kind of failure.

0 ok; 1 a user error (Milvus's refusal, a bad flag or file, a record changed meanwhile);
2 etcd unavailable, so scripts can retry that and only that.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from milvus_auth.config import ConfigError
from milvus_auth.core.errors import MilvusError
from milvus_auth.store import EtcdUnavailable, RevisionConflict

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_ETCD_UNAVAILABLE = 2


def run_to_exit_code(body: Callable[[], Coroutine[Any, Any, None]], *, what: str) -> int:
    """Run `body` in a fresh event loop; print a failure on stderr and return its exit code.

    `what` names the record a lost compare-and-swap was about (`the user changed ...`).
    """
    try:
        asyncio.run(body())
    except MilvusError as error:
        print(f"milvus-auth: {error.reason}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ConfigError as error:
        print(f"milvus-auth: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RevisionConflict:
        print(f"milvus-auth: the {what} changed while this ran; try again", file=sys.stderr)
        return EXIT_USER_ERROR
    except EtcdUnavailable as error:
        print(f"milvus-auth: {error}", file=sys.stderr)
        return EXIT_ETCD_UNAVAILABLE
    return EXIT_OK
