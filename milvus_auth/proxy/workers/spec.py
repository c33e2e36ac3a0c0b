"""What a worker is given: its settings and where it listens (pickled onto its stdin).

Kept apart from the worker's code so the supervisor, which imports this, never loads the
proxy's servers, pymilvus and the rest that only workers run.
"""

from __future__ import annotations

from dataclasses import dataclass

from milvus_auth.proxy.config import ProxySettings


@dataclass(frozen=True)
class WorkerPorts:
    """How one worker of `--workers N` listens: on the public port together with the other
    workers (SO_REUSEPORT; the supervisor keeps any other process off the port), and with its
    internal services on a private address that only the supervisor calls."""

    internal_address: str
    """A gRPC address, `unix:/path` in practice."""


@dataclass(frozen=True)
class WorkerSpec:
    """One worker: its index, its settings (its share of them) and its ports."""

    index: int
    settings: ProxySettings
    ports: WorkerPorts
