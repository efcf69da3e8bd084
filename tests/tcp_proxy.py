"""A loopback TCP proxy that a test controls, to stage a server going away and coming back.

    with TcpProxy(5432) as proxy:           # listens on 127.0.0.1:proxy.port
        ...                                 # traffic flows to 127.0.0.1:5432
        proxy.cut()                         # every open connection is closed, both sides
        proxy.refuse()                      # new connections are refused (the port is closed)
        proxy.resume()                      # the same port accepts and forwards again

``with proxy.outage(): ...`` does cut + refuse on entry and resume on exit: what clients see
when a database or an S3 endpoint restarts. Threads only; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from types import TracebackType

__all__ = ["TcpProxy"]

_CHUNK = 1 << 16
_ACCEPT_POLL = 0.05  # seconds between checks of the stop flag while waiting for a client


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` until told otherwise."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        #: connections accepted since start, and connections closed by :meth:`cut`
        self.accepted = 0
        self.cut_connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        state = "forwarding" if self._listener is not None else "refusing"
        return f"TcpProxy(127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}, {state})"

    # -- control ---------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        """Listen on a free loopback port (kept across :meth:`refuse`/:meth:`resume`)."""
        self._listen()
        return self

    def cut(self) -> int:
        """Close every open connection, client and server side; return how many were open."""
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _close(sock)
        self.cut_connections += len(doomed) // 2
        return len(doomed) // 2

    def refuse(self) -> None:
        """Stop listening: a new connection is refused, as by a server that is down."""
        listener, acceptor = self._listener, self._acceptor
        self._listener = self._acceptor = None
        self._stopping.set()
        if acceptor is not None:
            acceptor.join()
        if listener is not None:
            listener.close()

    def resume(self) -> None:
        """Listen and forward again, on the same port."""
        if self._listener is None:
            self._listen()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Cut every connection and refuse new ones for the ``with`` block; then resume."""
        self.refuse()
        self.cut()
        try:
            yield
        finally:
            self.resume()

    def close(self) -> None:
        self.refuse()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the plumbing ----------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(_ACCEPT_POLL)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener, self._stopping), daemon=True
        )
        self._acceptor.start()

    def _accept(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)  # the target is down too: the client sees its connection closed
                continue
            server.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        # One side finished or was cut: finish the other too.
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
