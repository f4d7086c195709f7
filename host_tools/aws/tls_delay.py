"""A TCP front that makes each new TLS handshake with mosquitto take longer, as on an ESP32.

mosquitto terminates TLS itself, so the delay cannot go into its handshake: the front
holds each new connection's first bytes (the ClientHello) for `delay_ms` before they
reach the broker, then relays both ways untouched. A connection is one handshake (the
firmware resumes no TLS session), so each handshake is delayed once. Each connection's
times are kept (`connections()`), so a benchmark can tell whether the device was in the
middle of a handshake at a given moment.
"""

import selectors
import socket
import threading
import time
from dataclasses import dataclass

_CHUNK = 16384


@dataclass
class Handshake:
    """One connection through the front, in time.monotonic() seconds."""

    opened: float
    released: float | None = None  # its bytes began to reach the broker
    closed: float | None = None

    def pending_at(self, moment: float) -> bool:
        """Whether the device was waiting for this handshake at `moment`."""
        end = min(t for t in (self.released, self.closed, float("inf")) if t is not None)
        return self.opened <= moment < end


class HandshakeDelay:
    """Listens on host:port (port 0: a free one) in front of the broker at upstream."""

    def __init__(self, upstream: tuple[str, int], delay_ms: int, host: str = "127.0.0.1",
                 port: int = 0):
        self.upstream = upstream
        self.delay_s = delay_ms / 1000
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._log: list[Handshake] = []
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="tls-delay", daemon=True)

    def start(self) -> "HandshakeDelay":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        _shut(self._listener)  # wakes the accept(), which a close() alone would not
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
        self._thread.join()

    def connections(self) -> list[Handshake]:
        with self._lock:
            return [Handshake(h.opened, h.released, h.closed) for h in self._log]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            entry = Handshake(time.monotonic())
            with self._lock:
                self._log.append(entry)
                self._sockets.add(client)
            threading.Thread(target=self._relay, args=(client, entry), daemon=True).start()

    def _relay(self, client: socket.socket, entry: Handshake) -> None:
        server = None
        try:
            if self._stopping.wait(self.delay_s):
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets.add(server)
            entry.released = time.monotonic()
            _pump(client, server, self._stopping)
        except OSError:
            pass  # the broker is down or restarting: the device sees its connection close
        finally:
            entry.closed = time.monotonic()
            with self._lock:
                for sock in (client, server):
                    if sock is not None:
                        self._sockets.discard(sock)
                        sock.close()


def _pump(a: socket.socket, b: socket.socket, stopping: threading.Event) -> None:
    """Relay bytes both ways until either side closes."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        for sock in peer:
            selector.register(sock, selectors.EVENT_READ)
        while not stopping.is_set():
            for key, _ in selector.select(timeout=0.5):
                data = key.fileobj.recv(_CHUNK)
                if not data:
                    return
                peer[key.fileobj].sendall(data)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
