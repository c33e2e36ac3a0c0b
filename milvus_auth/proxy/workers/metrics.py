"""One metrics endpoint for all workers: prometheus-client's multiprocess mode.

Each worker runs with `PROMETHEUS_MULTIPROC_DIR` set to a directory of the supervisor's, so
its metrics are kept in files there (one per process id); the supervisor's endpoint sums the
counters and histograms of every worker, dead ones included (a restart loses no count), and
adds its own: how many workers it runs, how many died and how many it restarted.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, multiprocess, start_http_server

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class SupervisorMetrics:
    """The workers' metrics (read from `directory`) and the supervisor's own."""

    def __init__(self, directory: Path, workers: int) -> None:
        self.directory = directory
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
        self.exits = Counter(
            "milvus_auth_proxy_worker_exits_total",
            "Worker processes that exited while the proxy was running (crashed or killed)",
            registry=self.registry,
        )
        self.restarts = Counter(
            "milvus_auth_proxy_worker_restarts_total",
            "Worker processes started again after one exited",
            registry=self.registry,
        )
        Gauge(
            "milvus_auth_proxy_workers",
            "Worker processes serving the public port (--workers)",
            registry=self.registry,
        ).set(workers)

    def worker_died(self, pid: int) -> None:
        """Count an exit; the dead process's live gauges (if any) stop being reported."""
        self.exits.inc()
        multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def serve(self, host: str, port: int) -> None:
        """Expose every worker's metrics and the supervisor's over HTTP on a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
