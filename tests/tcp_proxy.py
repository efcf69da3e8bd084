"""A loopback TCP proxy that a test controls, to stage a server going away and coming back.

    with TcpProxy(5432) as proxy:           # listens on 127.0.0.1:proxy.port
        ...                                 # traffic flows to 127.0.0.1:5432
        proxy.cut()                         # every open connection is closed, both sides
        proxy.refuse()                      # new connections are refused (the port is closed)
        proxy.resume()                      # the same port accepts and forwards again
        proxy.blackhole()                   # nothing is forwarded, nothing is closed
        proxy.resume()                      # what was held is delivered, traffic flows again

``with proxy.outage(): ...`` does cut + refuse on entry and resume on exit: what clients see
when a database or an S3 endpoint restarts. ``with proxy.silence(): ...`` is a blackhole for
the ``with`` block: what clients see when the network between them and the server goes silent
(a partition, a dead route, a frozen middlebox). Threads only; nothing leaves 127.0.0.1.

A blackhole, and its end, is shaped like a network partition that heals:

- every open connection stays open; bytes either way are read and held, not forwarded, and
  nothing is closed (a client that gave up and closed its side is closed upstream only once
  the network is back, after what it had sent, as TCP would deliver it);
- a new connection completes its TCP handshake (the proxy's kernel accepts it) and then hears
  nothing: it reaches the server only once the network is back;
- on :meth:`resume` what was held is delivered, in order, and traffic flows again on the
  connections both sides still hold.

One difference from a real partition: the proxy's kernel acknowledges every byte and answers
TCP keepalives, so neither ``tcp_user_timeout`` nor keepalives notice the silence here; a
client has to give up on a clock of its own, as it must when the server itself is frozen.
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
        self._open: dict[socket.socket, bool] = {}  # socket -> True for a client's side
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()
        # Cleared for a blackhole: the pumps and new connections wait on it.
        self._flowing = threading.Event()
        self._flowing.set()

    def __repr__(self) -> str:
        state = (
            "refusing"
            if self._listener is None
            else "forwarding"
            if self._flowing.is_set()
            else "silent"
        )
        return f"TcpProxy(127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}, {state})"

    # -- control ---------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        """Listen on a free loopback port (kept across :meth:`refuse`/:meth:`resume`)."""
        self._listen()
        return self

    def cut(self) -> int:
        """Close every open connection, client and server side; return how many were open."""
        with self._lock:
            doomed, self._open = self._open, {}
        for sock in doomed:
            _close(sock)
        clients = sum(doomed.values())
        self.cut_connections += clients
        return clients

    def refuse(self) -> None:
        """Stop listening: a new connection is refused, as by a server that is down."""
        listener, acceptor = self._listener, self._acceptor
        self._listener = self._acceptor = None
        self._stopping.set()
        if acceptor is not None:
            acceptor.join()
        if listener is not None:
            listener.close()

    def blackhole(self) -> None:
        """Forward nothing, close nothing: bytes either way are held, and new connections are
        accepted but reach the server only after :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Listen and forward again, on the same port; after a blackhole, deliver what was
        held first."""
        if self._listener is None:
            self._listen()
        self._flowing.set()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Cut every connection and refuse new ones for the ``with`` block; then resume."""
        self.refuse()
        self.cut()
        try:
            yield
        finally:
            self.resume()

    @contextlib.contextmanager
    def silence(self) -> Iterator[None]:
        """A blackhole for the ``with`` block; then resume."""
        self.blackhole()
        try:
            yield
        finally:
            self.resume()

    def close(self) -> None:
        self._flowing.set()  # what a blackhole holds lets go, and meets the cut
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
            with self._lock:
                self.accepted += 1
                self._open[client] = True
            if self._flowing.is_set():
                self._connect(client)
            else:  # the network is silent: the server hears of this client once it is back
                threading.Thread(target=self._connect_later, args=(client,), daemon=True).start()

    def _connect_later(self, client: socket.socket) -> None:
        self._flowing.wait()
        self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        """Connect ``client`` to the target and pump both ways."""
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._drop(client)  # the target is down too: the client sees its connection closed
            return
        server.settimeout(None)
        with self._lock:
            if client not in self._open:  # cut meanwhile
                _close(server)
                return
            self._open[server] = False
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)
        _close(sock)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                self._flowing.wait()  # a blackhole holds the bytes
                sink.sendall(data)
        except OSError:
            pass
        # One side finished or was cut: finish the other too (after a blackhole, not before).
        self._flowing.wait()
        with self._lock:
            self._open.pop(source, None)
            self._open.pop(sink, None)
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
