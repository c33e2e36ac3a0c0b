"""A TCP relay that reaches a server from another loopback source address (e.g. 127.0.0.2).

gRPC clients cannot choose their source address, and on Linux a connection to any 127.x
address comes from 127.0.0.1; a server that tells clients apart by address (the proxy's rate
limits) needs this relay to see a second client. Loopback aliases need no setup on Linux.
"""

from __future__ import annotations

import socket
import threading
from contextlib import closing, suppress
from types import TracebackType


class SourceRelay:
    """Listens on 127.0.0.1:<port>; each connection is forwarded to `target` from `source`."""

    def __init__(self, target: tuple[str, int], source: str) -> None:
        self._target = target
        self._source = source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>` for grpc channels."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> SourceRelay:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # shutdown wakes the accept() blocked in the thread; close alone may not on Linux.
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket()
            upstream.bind((self._source, 0))
            upstream.connect(self._target)
            for reader, writer in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(reader, writer), daemon=True).start()


def _pump(reader: socket.socket, writer: socket.socket) -> None:
    with closing(reader), closing(writer):
        try:
            while data := reader.recv(65536):
                writer.sendall(data)
        except OSError:
            pass
        # Wakes the opposite pump, blocked in recv on one of these sockets.
        for sock in (reader, writer):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
