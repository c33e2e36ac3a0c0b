"""The operator's Prometheus metrics, in a registry of its own (kopf has no built-in metrics).

One registry per operator instance keeps counts exact when tests run several operators in one
process, and lets tests count bcrypt runs and etcd writes directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class OperatorMetrics:
    """Reconciles by result, etcd writes, bcrypt time, proxy fan-out latency and failures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "milvus_auth_operator_reconciles",
            "MilvusUser and MilvusRole reconciles by result (Ready reason, Deleted, Retained)",
            ["result"],
            registry=self.registry,
        )
        self.etcd_writes = Counter(
            "milvus_auth_operator_etcd_writes",
            "etcd writes by operation (records; roles, grants and bindings)",
            ["operation"],
            registry=self.registry,
        )
        self.bcrypt_seconds = Histogram(
            "milvus_auth_operator_bcrypt_seconds",
            "time spent in bcrypt, by operation (hash or verify)",
            ["operation"],
            registry=self.registry,
        )
        self.fanout_seconds = Histogram(
            "milvus_auth_operator_proxy_fanout_seconds",
            "time to push one cache change to every proxy, by RPC",
            ["rpc"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.proxy_failures = Counter(
            "milvus_auth_operator_proxy_failures",
            "cache RPCs to one proxy that failed or timed out, by RPC",
            ["rpc"],
            registry=self.registry,
        )
        self.patch_retries = Counter(
            "milvus_auth_operator_patch_retries",
            "kopf PATCHes (status, finalizers) the API server refused with a passing status "
            "(409, 422) and the operator tried again, by status",
            ["status"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None

    @contextmanager
    def bcrypt(self, operation: str) -> Iterator[None]:
        """Time one bcrypt hash or verify."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.bcrypt_seconds.labels(operation).observe(time.perf_counter() - started)

    def bcrypt_count(self) -> int:
        """How many bcrypt operations ran (hashes and verifies)."""
        return int(sum(self._sample_total("milvus_auth_operator_bcrypt_seconds_count")))

    def etcd_write_count(self) -> int:
        """How many etcd writes (records, roles, grants, bindings) happened."""
        return int(sum(self._sample_total("milvus_auth_operator_etcd_writes_total")))

    def _sample_total(self, name: str) -> list[float]:
        return [
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name
        ]

    def serve(self, port: int) -> None:
        """Serve /metrics on the port (a daemon thread)."""
        self._server, _ = start_http_server(port, registry=self.registry)

    def stop(self) -> None:
        """Stop serving /metrics."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
