"""One worker process: `python -m milvus_auth.proxy.workers.child`, started by the supervisor.

The supervisor writes a pickled `WorkerSpec` (the parsed settings, so nothing is read or parsed
twice) to the worker's stdin and keeps that pipe open: when it reads end-of-file the
supervisor is gone, however it died, and the worker stops as on SIGTERM instead of serving the
public port unsupervised.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading

from milvus_auth.config import configure_logging
from milvus_auth.proxy.server import serve
from milvus_auth.proxy.startup import exit_code
from milvus_auth.proxy.workers.spec import WorkerSpec


class _Tagged(logging.Filter):
    """Prefixes each line with the worker's index, so interleaved logs can be told apart."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._prefix = f"worker {index}: "

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith(self._prefix):
            record.msg = self._prefix + record.msg
        return True


def _stop_when_orphaned(fd: int) -> None:
    # Raw reads: a daemon thread blocked in a buffered read would abort the interpreter's exit.
    while os.read(fd, 4096):
        pass  # end-of-file: the supervisor closed the pipe or died
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    """Serve as the spec on stdin says until SIGTERM, SIGINT or the supervisor's end."""
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)  # noqa: S301 - our parent's own pipe
    configure_logging(spec.settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Tagged(spec.index))
    threading.Thread(target=_stop_when_orphaned, args=(sys.stdin.fileno(),), daemon=True).start()
    return exit_code(lambda: serve(spec.settings, spec.ports))


if __name__ == "__main__":
    sys.exit(main())
