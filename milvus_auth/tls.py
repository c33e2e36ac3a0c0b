"""TLS on every hop: the proxy's public and internal ports as servers; the proxy to its upstream
and the operator to the proxies as clients. Shared by `proxy` and `operator`.

PEM files are read once at start, with errors that name the flag and the file; gRPC's own
credential objects are built here from the typed settings, so nothing else touches PEM bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from milvus_auth.config import ConfigError

_PEM_BEGIN = b"-----BEGIN "


@dataclass(frozen=True)
class TlsSettings:
    """A port's certificate, and the CA that client certificates must chain to."""

    certificate: bytes
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = None
    """When set, clients must present a certificate signed by this CA (mutual TLS)."""


@dataclass(frozen=True)
class ClientTls:
    """TLS from the proxy (or the operator) to a server: whom to trust, which name to expect,
    and the client certificate to show when the server asks for one."""

    ca: bytes | None = None
    """PEM CA bundle; None trusts the system's roots (gRPC's bundled roots)."""
    server_name: str | None = None
    """The name the server's certificate must carry, when it is not the dialled host."""
    certificate: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)


def read_pem(flag: str, path: str) -> bytes:
    """The PEM file a flag names; `ConfigError` naming both when it is missing or not PEM."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{flag}: cannot read {path}: {error.strerror}") from error
    if _PEM_BEGIN not in data:
        raise ConfigError(f"{flag}: {path} is not a PEM file")
    return data


def server_tls(
    flags: tuple[str, str, str], cert: str | None, key: str | None, client_ca: str | None
) -> TlsSettings | None:
    """A port's TLS from its three flags (named in `flags`: cert, key, client CA); None when
    neither a certificate nor a key is given."""
    cert_flag, key_flag, ca_flag = flags
    if bool(cert) != bool(key):
        raise ConfigError(f"{cert_flag} and {key_flag} go together")
    if not cert or not key:
        if client_ca:
            raise ConfigError(f"{ca_flag} needs {cert_flag} and {key_flag}")
        return None
    return TlsSettings(
        read_pem(cert_flag, cert),
        read_pem(key_flag, key),
        read_pem(ca_flag, client_ca) if client_ca else None,
    )


def client_tls(
    flags: tuple[str, str, str],
    ca: str | None,
    cert: str | None,
    key: str | None,
    server_name: str | None,
) -> ClientTls:
    """TLS to a server from its flags (named in `flags`: CA, client cert, client key)."""
    ca_flag, cert_flag, key_flag = flags
    if bool(cert) != bool(key):
        raise ConfigError(f"{cert_flag} and {key_flag} go together")
    return ClientTls(
        ca=read_pem(ca_flag, ca) if ca else None,
        server_name=server_name or None,
        certificate=read_pem(cert_flag, cert) if cert else None,
        private_key=read_pem(key_flag, key) if key else None,
    )


def add_port(server: grpc.aio.Server, address: str, tls: TlsSettings | None) -> int:
    """Listen on `address`, with TLS (mutual when a client CA is set) when `tls` is given."""
    if tls is None:
        return server.add_insecure_port(address)
    credentials = grpc.ssl_server_credentials(
        [(tls.private_key, tls.certificate)],
        root_certificates=tls.client_ca,
        require_client_auth=tls.client_ca is not None,
    )
    return server.add_secure_port(address, credentials)


def channel(
    target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`: plain text without `tls`."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.private_key, certificate_chain=tls.certificate
    )
    extra = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.aio.secure_channel(target, credentials, options=[*options, *extra])
