"""The worker processes: started, called, watched, restarted when they die, stopped together.

The workers start together (root's bootstrap and the default roles tolerate a concurrent start:
the first write wins); a worker that exits before all serve fails the start with its exit code
(etcd down: 2, no root password: 1), each worker having printed why. After start-up a worker
that dies is started again, after a pause that
doubles while it keeps dying young (0.5 s to 30 s); its death and its restart are logged and
counted. Each worker gets a private internal endpoint (a unix socket in the supervisor's 0700
directory) that only the supervisor calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from milvus_auth.proxy.workers.fanout import Answer, Failed, WorkerCall
from milvus_auth.proxy.workers.metrics import SupervisorMetrics
from milvus_auth.proxy.workers.spec import WorkerSpec

log = logging.getLogger(__name__)

CHILD = "milvus_auth.proxy.workers.child"
FIRST_PAUSE = 0.5
LONGEST_PAUSE = 30.0
# A worker that ran this long before dying is restarted after the first pause again.
YOUNG = 30.0
_STARTING_POLL = 0.1
# The channel to a restarted worker must not wait out gRPC's default reconnect backoff.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def exit_text(code: int) -> str:
    """`exit code 3` or `signal SIGKILL` for a process's return code."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


class Worker:
    """One worker process and the channel to its private internal endpoint."""

    def __init__(self, spec: WorkerSpec, env: Mapping[str, str]) -> None:
        self.index = spec.index
        self._spec = pickle.dumps(spec)
        self._env = dict(env)
        self._address = spec.ports.internal_address
        self.process: asyncio.subprocess.Process | None = None
        self._channel: grpc.aio.Channel | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        """The current process's id (0 before the first start)."""
        return self.process.pid if self.process is not None else 0

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the process and hand it its spec; the pipe stays open while it lives."""
        await self.close_channel()
        # A dead worker's socket file would make the new one's bind fail.
        stale = Path(self._address.removeprefix("unix:"))
        await asyncio.to_thread(stale.unlink, missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", CHILD, stdin=asyncio.subprocess.PIPE, env=self._env
        )
        assert self.process.stdin is not None
        self.process.stdin.write(self._spec)
        await self.process.stdin.drain()
        self.started_at = time.monotonic()
        self._channel = grpc.aio.insecure_channel(self._address, options=_CHANNEL_OPTIONS)

    async def wait(self) -> int:
        """The process's return code once it exits."""
        assert self.process is not None
        return await self.process.wait()

    async def serving(self) -> bool:
        """Whether it is alive and its gRPC health says SERVING."""
        if not self.running or self._channel is None:
            return False
        try:
            answer = await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    async def call(
        self, method: str, request: bytes, metadata: Sequence[tuple[str, str]], seconds: float
    ) -> Answer:
        """One unary call on its internal endpoint, raw bytes in and out, `seconds` at most."""
        if not self.running or self._channel is None:
            return Failed(grpc.StatusCode.UNAVAILABLE, f"worker {self.index} is not running")
        try:
            raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(method)
            answer = await raw(request, metadata=tuple(metadata), timeout=seconds)
        except grpc.aio.AioRpcError as error:
            return Failed(error.code(), error.details() or "")
        return answer

    def signal(self, signum: int) -> None:
        """Send a signal if it is alive."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def close_channel(self) -> None:
        """Close the channel to the current process."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class WorkerPool:
    """`specs` as worker processes (environment `env`), kept alive until `stop`."""

    def __init__(
        self, specs: Sequence[WorkerSpec], env: Mapping[str, str], metrics: SupervisorMetrics
    ) -> None:
        self.workers = [Worker(spec, env) for spec in specs]
        self._metrics = metrics
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    def calls(self) -> list[WorkerCall]:
        """Each worker's `call`, in worker order (what the fan-out needs)."""
        return [worker.call for worker in self.workers]

    async def all_serving(self) -> bool:
        """Whether every worker is alive and serving."""
        answers = await asyncio.gather(*(worker.serving() for worker in self.workers))
        return all(answers)

    async def start(self) -> int | None:
        """Start every worker; None once all serve, else the exit code of the first one that
        exited (the caller then stops the others)."""
        for worker in self.workers:
            await worker.start()
        while True:
            for worker in self.workers:
                if not worker.running:
                    code = await worker.wait()
                    log.error("worker %d did not start: %s", worker.index, exit_text(code))
                    return code or 1
            if await self.all_serving():
                return None
            await asyncio.sleep(_STARTING_POLL)

    def keep_alive(self) -> None:
        """From now on, start a worker again whenever it dies."""
        self._watchers = [asyncio.create_task(self._watch(worker)) for worker in self.workers]

    async def _watch(self, worker: Worker) -> None:
        pause = FIRST_PAUSE
        while True:
            code = await worker.wait()
            if self._stopping:
                return
            lived = time.monotonic() - worker.started_at
            pause = FIRST_PAUSE if lived >= YOUNG else pause
            log.error(
                "worker %d (pid %d) died after %.1f s: %s; starting it again in %.1f s",
                worker.index,
                worker.pid,
                lived,
                exit_text(code),
                pause,
            )
            self._metrics.worker_died(worker.pid)
            while True:
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                try:
                    await worker.start()
                    break
                except OSError as error:
                    log.error("worker %d could not be started again: %s", worker.index, error)
            self._metrics.restarts.inc()
            log.warning("worker %d restarted (pid %d)", worker.index, worker.pid)

    async def stop(self, within: float, signum: int = signal.SIGTERM) -> bool:
        """Send `signum` to every worker and wait `within` seconds for all (then SIGKILL the rest);
        whether every one exited with 0."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        for worker in self.workers:
            worker.signal(signum)
        clean = True
        deadline = time.monotonic() + within
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                code = await asyncio.wait_for(worker.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.error("worker %d did not stop in time: killed", worker.index)
                worker.signal(signal.SIGKILL)
                code = await worker.wait()
            # Killed by our SIGTERM: it had not installed its handlers, so it was not serving.
            if code not in (0, -signal.SIGTERM):
                clean = False
                log.error("worker %d stopped with %s", worker.index, exit_text(code))
            await worker.close_channel()
        return clean
