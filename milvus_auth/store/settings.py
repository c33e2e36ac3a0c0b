"""How to reach etcd: endpoints, authentication, TLS and the per-call timeout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Endpoint:
    """One etcd member's client address."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse `host:port`, `[v6]:port`, or an `http(s)://host:port` URL as etcdctl takes it."""
        address = text.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"etcd endpoint must be host:port, got {text!r}")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EtcdSettings:
    """Connection settings shared by every process that talks to etcd."""

    endpoints: tuple[Endpoint, ...] = (Endpoint("127.0.0.1", 2379),)
    """Members to try, in order; the store fails over to the next one when a call fails."""
    user: str | None = None
    """etcd user for etcd's own authentication, or None when etcd has auth off."""
    password: str | None = field(default=None, repr=False)
    """Password of `user`, read from a file by the configuration layer."""
    ca_file: Path | None = None
    """CA bundle that signed the etcd server certificate; set to use TLS."""
    cert_file: Path | None = None
    """Client certificate for mutual TLS."""
    key_file: Path | None = None
    """Private key of `cert_file`."""
    timeout: float = 5.0
    """Seconds any single etcd call may take before it fails with `EtcdUnavailable`."""

    @property
    def uses_tls(self) -> bool:
        """TLS is on when any of the TLS files is given."""
        return any((self.ca_file, self.cert_file, self.key_file))
