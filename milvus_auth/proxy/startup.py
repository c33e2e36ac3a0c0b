"""How a proxy process ends: the exit code of a start-up failure, for one proxy and for each
worker and supervisor of `--workers N` alike.

Exit codes: 0 after a clean shutdown, 1 for a configuration problem (bad flag, unreadable file,
port in use, root bootstrap impossible), 2 when etcd cannot be reached at start.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from milvus_auth.config import ConfigError
from milvus_auth.exits import EXIT_ETCD_UNAVAILABLE, EXIT_OK, EXIT_USER_ERROR

__all__ = ["EXIT_ETCD_UNAVAILABLE", "EXIT_OK", "EXIT_USER_ERROR", "exit_code"]


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
