"""A TCP relay on 127.0.0.1 between a client and PostgreSQL, for outage tests.

``kill``: the listener and every connection closed, new connections refused (a database that went away).
``freeze``: connections stay open but no byte moves (a network that drops packets: writes hang).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``upstream``; can be killed and restarted on the same port, or frozen."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port again
        listener.settimeout(0.02)
        self.port = listener.getsockname()[1]
        self._running = True
        self._flowing.set()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def kill(self) -> None:
        with self._lock:
            self._running = False
        if self._thread is not None:
            self._thread.join(10)  # it closes the listener; only then is the port free again
            self._thread = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._flowing.set()  # frozen pumps wake up, find their sockets closed and end

    def freeze(self) -> None:
        """Stop moving bytes; connections stay open (new ones connect, then hang too)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Move the held bytes on and carry on relaying."""
        self._flowing.set()

    def _register(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._running:
                self._sockets.update(socks)
                return True
        for s in socks:
            s.close()
        return False

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._running:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not self._register(client):
                    return
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                if not self._register(server):
                    return
                for sock in (client, server):
                    sock.settimeout(None)
                    # As libpq and the server do: without it, Nagle and delayed ACKs stall every round trip.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for src, dst in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while not self._flowing.wait(0.5):
                    if not self._running:
                        return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
