"""The proxy's Prometheus metrics, in a registry of its own so tests can read a fresh set.

No label ever holds a username, password or header: only results, reasons, methods and codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_PREFIX = "milvus_auth_proxy"
# bcrypt takes 1 ms (cost 4) to 300 ms (cost 12); upstream calls 0.1 ms to minutes.
_BCRYPT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_UPSTREAM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0)


class ProxyMetrics:
    """Every metric the proxy exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.auth_results = Counter(
            f"{_PREFIX}_auth_total",
            "Authentication decisions by result (success, failure, unavailable) and reason",
            ["result", "reason"],
            registry=self.registry,
        )
        self.cache_lookups = Counter(
            f"{_PREFIX}_cache_lookups_total",
            "Credential cache lookups by outcome (hit, miss)",
            ["outcome"],
            registry=self.registry,
        )
        self.bcrypt_seconds = Histogram(
            f"{_PREFIX}_bcrypt_seconds",
            "Time of each bcrypt verification (the count is the number of bcrypt runs)",
            buckets=_BCRYPT_BUCKETS,
            registry=self.registry,
        )
        self.forwarded = Counter(
            f"{_PREFIX}_forwarded_total",
            "Calls forwarded to the upstream Milvus by method and gRPC status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            f"{_PREFIX}_upstream_seconds",
            "Latency of calls forwarded to the upstream Milvus, by method",
            ["method"],
            buckets=_UPSTREAM_BUCKETS,
            registry=self.registry,
        )
        self.api_key_results = Counter(
            f"{_PREFIX}_api_key_auth_total",
            "API-key logins by result (success, failure, unavailable) and reason",
            ["result", "reason"],
            registry=self.registry,
        )
        self.api_key_reads = Counter(
            f"{_PREFIX}_api_key_etcd_reads_total",
            "etcd reads on the API-key login path (cache misses), by record (key, user)",
            ["record"],
            registry=self.registry,
        )
        self.api_key_last_used_writes = Counter(
            f"{_PREFIX}_api_key_last_used_writes_total",
            "Last-use stamps of API keys by outcome (written, current, conflict, revoked, failed)",
            ["result"],
            registry=self.registry,
        )
        # Resolved once: `labels()` takes a lock and a dict lookup on every call.
        self.cache_hit = self.cache_lookups.labels("hit")
        self.cache_miss = self.cache_lookups.labels("miss")
        self.auth_cached = self.auth_results.labels("success", "cached")
        self.api_key_cached = self.api_key_results.labels("success", "cached")

    def bcrypt_runs(self) -> int:
        """How many bcrypt verifications ran (for tests and benchmarks)."""
        value = self.registry.get_sample_value(f"{_PREFIX}_bcrypt_seconds_count")
        return int(value or 0)

    def api_key_reads_of(self, record: str) -> int:
        """How many etcd reads of `record` (key, user) API-key logins made (tests, benchmarks)."""
        value = self.registry.get_sample_value(
            f"{_PREFIX}_api_key_etcd_reads_total", {"record": record}
        )
        return int(value or 0)

    def serve(self, host: str, port: int) -> None:
        """Expose the metrics over HTTP on a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
