"""Large messages without page faults: freed message buffers stay in the heap for the next one.

grpcio hands a received message to Python as a new `bytes` (built in a growing buffer) and
copies a message it sends into a new slice; milvus-auth itself neither decodes nor copies a
forwarded message. glibc serves every allocation over its mmap threshold (128 KiB, rising to
at most 32 MiB) with a fresh `mmap` and unmaps it on free, so each MiB of each of those buffers
cost 256 page faults, the kernel zeroing the pages, and an unmap afterwards: measured with
`perf`, that was most of the proxy's CPU for a 16 or 64 MiB message, and the reason its cost
grew faster than the payload (bench/payload.py). With mmap off and a trim threshold above what
one message needs, freed buffers stay in the heap and the next message reuses them warm.

The price is memory: after a large message the process keeps up to `BUFFERS_PER_MESSAGE` times
the largest message it accepts as free heap (its RSS does not fall back), bounded and reused.
On a C library without glibc's `mallopt` (musl) nothing changes.
"""

from __future__ import annotations

import ctypes

# <malloc.h> parameter numbers (glibc).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

BUFFERS_PER_MESSAGE = 4
"""Buffers of a message's size alive while the proxy forwards it: grpcio's receive buffer and
the `bytes` made from it, the slice it sends, and the transport's own (measured: fewer than
this brought the page faults back for 64 MiB messages)."""


def keep_freed_buffers(max_message_bytes: int) -> bool:
    """Serve large allocations from the heap and keep up to `BUFFERS_PER_MESSAGE` times
    `max_message_bytes` of freed memory; True when the C library took both settings."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    retain = min(BUFFERS_PER_MESSAGE * max_message_bytes, _INT_MAX)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, retain))
