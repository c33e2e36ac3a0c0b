"""`milvus-auth proxy --workers N` (N > 1): one supervisor process and N workers.

What is true of one proxy stays true of N workers:
- the public port: every worker listens on it with SO_REUSEPORT and the kernel spreads the
  connections; the supervisor binds it first without SO_REUSEPORT (so a port another process
  listens on refuses the start, as for one proxy, and port 0 picks one port for all) and then
  keeps it with a bound, never-listening socket, so no other process joins while a worker
  restarts;
- the internal port is the supervisor's: each call reaches every worker and answers Success only
  when all applied it (fanout.py); gRPC health is SERVING only while every worker is;
- one metrics endpoint sums every worker's counters (metrics.py);
- failed-login limits: each worker gets 1/N of every limit (`share_limits`), so N workers
  together never allow more than one proxy (a client whose connections all reach one worker
  gets 1/N of its allowance; a burst below N becomes 1 per worker, so N in all);
- SIGTERM (or SIGINT) goes to every worker, each drains in the grace period, and the process
  exits 0 when they all stopped cleanly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from milvus_auth.proxy.authn.ratelimit import RateLimitSettings
from milvus_auth.proxy.config import ProxySettings, warn_about_settings
from milvus_auth.proxy.opsconfig import OpsSettings
from milvus_auth.proxy.startup import EXIT_USER_ERROR, exit_code
from milvus_auth.proxy.workers.fanout import FanOut
from milvus_auth.proxy.workers.metrics import MULTIPROC_ENV, SupervisorMetrics
from milvus_auth.proxy.workers.pool import WorkerPool
from milvus_auth.proxy.workers.spec import WorkerPorts, WorkerSpec
from milvus_auth.tls import add_port

log = logging.getLogger(__name__)

HEALTH_PERIOD = 0.5
# On top of the grace period, for a worker to close etcd and its threads once drained.
STOP_MARGIN = 5.0


def share_limits(limits: RateLimitSettings, workers: int) -> RateLimitSettings:
    """One worker's share of the failed-login limits: bursts and rates divided by `workers`
    (a burst rounded down but at least 1, so a limit that is on stays on)."""

    def burst(value: int) -> int:
        return max(1, value // workers) if value else 0

    return dataclasses.replace(
        limits,
        user_burst=burst(limits.user_burst),
        user_per_second=limits.user_per_second / workers,
        user_total_burst=burst(limits.user_total_burst),
        user_total_per_second=limits.user_total_per_second / workers,
        peer_burst=burst(limits.peer_burst),
        peer_per_second=limits.peer_per_second / workers,
    )


def worker_settings(settings: ProxySettings, port: int, index: int) -> ProxySettings:
    """What worker `index` runs with: the reserved public port, its share of the limits, no
    metrics port of its own (the supervisor serves every worker's), one process, and an access
    log file of its own (`PATH.worker<index>`: one rotating file per writer)."""
    return dataclasses.replace(
        settings,
        port=port,
        metrics_port=0,
        rate_limits=share_limits(settings.rate_limits, settings.workers),
        workers=1,
        ops=_own_access_log(settings.ops, index),
    )


def _own_access_log(ops: OpsSettings, index: int) -> OpsSettings:
    access = ops.access_log
    if access is None or access.destination == "-":
        return ops
    own = dataclasses.replace(access, destination=f"{access.destination}.worker{index}")
    return dataclasses.replace(ops, access_log=own)


def reserve_port(host: str, port: int) -> socket.socket:
    """The public port, checked free and kept for the workers (see the module docstring)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    keeper = socket.socket(family, kind, proto)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    keeper.bind(address)
    return keeper


def supervise(settings: ProxySettings) -> int:
    """Run `settings.workers` workers until SIGTERM or SIGINT; the process's exit code."""
    try:
        keeper = reserve_port(settings.host, settings.port)
    except OSError as error:
        print(
            f"milvus-auth proxy: cannot start: {settings.host}:{settings.port}: "
            f"{error.strerror or error}",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    # mkdtemp's directory is the owner's alone: the workers' sockets and metric files.
    with keeper, tempfile.TemporaryDirectory(prefix="milvus-auth-proxy-") as directory:
        port = keeper.getsockname()[1]
        return exit_code(lambda: _supervise(settings, port, Path(directory)))


async def _supervise(settings: ProxySettings, port: int, runtime: Path) -> int | None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics_dir = runtime / "metrics"
    metrics_dir.mkdir()
    metrics = SupervisorMetrics(metrics_dir, settings.workers)
    specs = [
        WorkerSpec(
            index,
            worker_settings(settings, port, index),
            WorkerPorts(f"unix:{runtime / f'worker-{index}.sock'}"),
        )
        for index in range(settings.workers)
    ]
    pool = WorkerPool(specs, {**os.environ, MULTIPROC_ENV: str(metrics_dir)}, metrics)
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    internal = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health, internal)
    internal.add_generic_rpc_handlers((FanOut(pool.calls),))
    internal_port = add_port(
        internal, f"{settings.internal_host}:{settings.internal_port}", settings.ops.internal_tls
    )
    if settings.metrics_port:
        metrics.serve(settings.host, settings.metrics_port)
    await internal.start()
    reporter: asyncio.Task[None] | None = None
    try:
        starting = asyncio.create_task(pool.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not starting.done():
            starting.cancel()
            return None
        failed = starting.result()
        if failed is not None:
            return failed
        pool.keep_alive()
        warn_about_settings(settings, internal_port)
        log.info(
            "proxy ready: %d workers on public %s:%d -> upstream %s, internal %s:%d",
            settings.workers,
            settings.host,
            port,
            settings.upstream,
            settings.internal_host,
            internal_port,
        )
        reporter = asyncio.create_task(_report_health(pool, health))
        await stop.wait()
        log.info("shutting down: the workers' in-flight calls get %.1f s", settings.shutdown_grace)
    finally:
        if reporter is not None:
            reporter.cancel()
        await health.enter_graceful_shutdown()
        clean = await pool.stop(settings.shutdown_grace + STOP_MARGIN)
        await internal.stop(min(settings.shutdown_grace, 1.0))
    log.info("proxy stopped")
    return None if clean else EXIT_USER_ERROR


async def _report_health(pool: WorkerPool, health: health_aio.HealthServicer) -> None:
    """SERVING while every worker serves; each change is logged."""
    serving: bool | None = None
    while True:
        now = await pool.all_serving()
        if now != serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if now
                else (health_pb2.HealthCheckResponse.NOT_SERVING)
            )
            await health.set("", status)
            log.log(
                logging.INFO if now else logging.WARNING,
                "health: %s",
                "every worker serving" if now else "not every worker is serving",
            )
            serving = now
        await asyncio.sleep(HEALTH_PERIOD)
