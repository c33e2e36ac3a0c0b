"""Every bcrypt the proxy runs: a few lower-priority threads, off the event loop, timed.

A bcrypt takes a core for 70-300 ms. Logins, old-password checks and new hashes all run here,
so they never block the loop that serves cached users, and `milvus_auth_proxy_bcrypt_seconds`
counts every verification. `verify_nobody` checks a password against a dummy hash of the
configured cost: a login for a user without a (readable) record then takes as long as a wrong
password for a real user, so timing does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from milvus_auth.core import hash_password, verify_password
from milvus_auth.proxy.metrics import ProxyMetrics

BCRYPT_NICENESS = 10


def _lower_priority() -> None:
    """Run this bcrypt thread at a lower CPU priority than the event loop (Linux: per thread).

    At equal priority a bcrypt slows the loop that serves every cached user. Where per-thread
    priorities are not supported this is a no-op.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICENESS)


class BcryptPool:
    """The bcrypt threads; `close` stops them."""

    def __init__(self, *, cost: int, metrics: ProxyMetrics, threads: int = 2) -> None:
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="bcrypt", initializer=_lower_priority
        )
        # One bcrypt at start; the password is random and forgotten, so nothing matches it.
        self._dummy = hash_password(secrets.token_urlsafe(24), cost)

    async def verify(self, password: str, hashed: str) -> bool:
        """Whether `password` matches the bcrypt hash."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, verify_password, password, hashed)
        finally:
            self._metrics.bcrypt_seconds.observe(time.perf_counter() - started)

    async def verify_nobody(self, password: str) -> None:
        """Spend the time of a verification for a user who has no usable record."""
        await self.verify(password, self._dummy)

    async def hash(self, password: str, cost: int) -> str:
        """A new bcrypt hash of `password` (not counted: the metric counts verifications)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, hash_password, password, cost)

    def close(self) -> None:
        """Stop the threads (waiting for running checks)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
