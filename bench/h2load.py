"""h2load (Debian `nghttp2-client`, a C HTTP/2 client) as the load for unary gRPC calls.

A Python client costs more CPU per call than the proxy it measures; h2load does not, so the
proxy's figures are its own. gRPC over HTTP/2 is a POST with `content-type: application/grpc`
and `te: trailers` whose body is one message: a flag byte (0, not compressed), the length as
4 big-endian bytes, then the protobuf bytes. h2load counts every HTTP 200 as a success, and a
gRPC error is an HTTP 200 too (its status travels in the trailers), so callers check the
status of one call of each kind themselves.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded")


def grpc_body(message: bytes) -> bytes:
    """One uncompressed gRPC message frame: flag byte, big-endian length, message."""
    return struct.pack(">BI", 0, len(message)) + message


def binary() -> str:
    """The h2load executable, or a clear error naming the package to install."""
    found = shutil.which("h2load")
    if found is None:
        raise RuntimeError("h2load not found: apt-get install -y nghttp2-client")
    return found


@dataclass(frozen=True)
class Load:
    """What one h2load run did."""

    succeeded: int
    seconds: float
    rate: float


async def h2load(
    address: str,
    method: str,
    body: Path,
    *,
    requests: int,
    connections: int = 4,
    streams: int = 8,
    headers: Sequence[tuple[str, str]] = (),
    rate: float | None = None,
) -> Load:
    """`requests` unary calls of `method` on `address` with `body`, `connections` x `streams`;
    with `rate`, each connection sends that many calls per second (h2load's `--rps`)."""
    argv = [
        binary(),
        *("-n", str(requests), "-c", str(connections), "-m", str(streams)),
        *(("--rps", f"{rate:g}") if rate is not None else ()),
        *("-H", "content-type: application/grpc", "-H", "te: trailers"),
        *(arg for key, value in headers for arg in ("-H", f"{key}: {value}")),
        *("-d", str(body)),
        f"http://{address}{method}",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    finished = _FINISHED.search(text)
    done = _REQUESTS.search(text)
    if process.returncode != 0 or finished is None or done is None:
        raise RuntimeError(f"h2load failed ({process.returncode}):\n{text}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return Load(int(done.group(1)), seconds, float(finished.group(3)))
