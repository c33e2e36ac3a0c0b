"""Which worker of a `--workers N` proxy holds which client connection, read from /proc.

The kernel spreads connections over the workers (SO_REUSEPORT), so a test that must reach
every worker opens channels one at a time and asks /proc which worker accepted each: the
worker whose set of established connections on the public port grew.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

_ESTABLISHED = "01"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def accepted(pid: int, port: int) -> set[str]:
    """The client addresses (hex, as /proc shows them) of `pid`'s established connections
    on local `port`."""
    inodes = _socket_inodes(pid)
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            mine = inode in inodes and state == _ESTABLISHED
            if mine and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(remote)
    return found


@dataclass
class WorkerChannels:
    """Open channels to a proxy, each with the index of the worker that accepted it."""

    channels: list[tuple[int, grpc.Channel]]

    def on(self, worker: int) -> list[grpc.Channel]:
        """The channels worker `worker` holds."""
        return [channel for index, channel in self.channels if index == worker]

    def one_per_worker(self) -> list[grpc.Channel]:
        """One channel on each worker, in worker order."""
        return [self.on(index)[0] for index in sorted({index for index, _ in self.channels})]


@contextlib.contextmanager
def channels_on_every_worker(
    port: int, pids: Sequence[int], *, each: int = 1, attempts: int = 64
) -> Iterator[WorkerChannels]:
    """Channels to 127.0.0.1:`port` until each worker (`pids`) holds at least `each` of them
    (closed on exit)."""
    opened: list[tuple[int, grpc.Channel]] = []
    try:
        for _ in range(attempts):
            if all(sum(1 for index, _ in opened if index == w) >= each for w in range(len(pids))):
                break
            before = [accepted(pid, port) for pid in pids]
            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            grpc.channel_ready_future(channel).result(timeout=10)
            grown = [index for index, pid in enumerate(pids) if accepted(pid, port) - before[index]]
            assert len(grown) == 1, f"a new connection appeared on workers {grown}"
            opened.append((grown[0], channel))
        else:
            raise AssertionError(f"{attempts} connections did not reach all {len(pids)} workers")
        yield WorkerChannels(opened)
    finally:
        for _, channel in opened:
            channel.close()
