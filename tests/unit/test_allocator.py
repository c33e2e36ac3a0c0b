"""The allocator setting that keeps freed message buffers: glibc takes it, and a large
allocation made after it is served from the heap (no new mapping), freed and reused."""

from __future__ import annotations

import ctypes
from pathlib import Path

from milvus_auth.proxy.allocator import keep_freed_buffers

MIB = 1024 * 1024


def _mappings() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


def test_large_buffers_come_from_the_heap_after_it() -> None:
    assert keep_freed_buffers(64 * MIB)
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    before = _mappings()
    first = libc.malloc(48 * MIB)
    assert first
    # An mmap'd chunk would be a mapping of its own; a heap chunk only grows the heap.
    assert _mappings() <= before + 1
    libc.free(first)
    second = libc.malloc(48 * MIB)
    assert second == first  # the freed buffer was kept and is reused
    libc.free(second)
