"""The simulated board's Wi-Fi, seen from outside the board: a TCP relay on loopback in
front of each server the firmware reaches (Spotify, the broker, an OTA server), which
the simulator points the firmware at. Cutting the network closes every relayed
connection and refuses new ones until it is restored, as a board that lost its access
point would find. The simulated board reads the same state (network_ok(), and
connect_network() waits for it) from a flag file that exists while the network is cut.
"""

import shutil
import socket
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..common.errors import SpottyError

_CHUNK = 65536


class Network:
    """Relays that a scenario's `wifi` events (or a test) cut and restore."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="spotty-wifi-")
        self.flag = Path(self._dir) / "down"  # exists while the network is cut
        self._relays: dict[tuple[str, int], _Relay] = {}
        self._lock = threading.Lock()
        self.up = True

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def relay(self, host: str, port: int) -> int:
        """The port on `host` where the firmware reaches host:port through this network."""
        with self._lock:
            relay = self._relays.get((host, port))
            if relay is None:
                _check_local(host)
                relay = self._relays[(host, port)] = _Relay(host, port, listening=self.up)
            return relay.port

    def url(self, url: str) -> str:
        """https://host:port/path as the firmware reaches it through this network."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise SpottyError("only https://host[:port]/... URLs can be relayed: %s" % url)
        port = self.relay(parts.hostname, parts.port or 443)
        return urlunsplit(parts._replace(netloc="%s:%d" % (parts.hostname, port)))

    def set(self, up: bool) -> None:
        """Restore (True) or cut (False) the network."""
        with self._lock:
            if up == self.up:
                return
            self.up = up
            if up:
                self.flag.unlink(missing_ok=True)
            else:
                self.flag.touch()  # before the cut: a board that sees it gone knows why
            for relay in self._relays.values():
                relay.listen() if up else relay.cut()

    def close(self) -> None:
        with self._lock:
            for relay in self._relays.values():
                relay.cut()
            self._relays.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Relay:
    """Forwards every connection to its port to the server, until cut."""

    def __init__(self, host: str, port: int, listening: bool) -> None:
        self.host = host
        self.target = (host, port)
        self.port = 0  # chosen at the first listen, kept across cuts
        self._listener: socket.socket | None = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self.listen()
        if not listening:
            self.cut()

    def listen(self) -> None:
        try:
            listener = socket.create_server((self.host, self.port))  # SO_REUSEADDR
        except OSError as e:
            raise SpottyError("the network relay cannot listen on %s:%d again: %s" % (
                self.host, self.port, e)) from e
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="relay-%d" % self.port).start()

    def cut(self) -> None:
        """Close every relayed connection and stop listening: new ones are refused."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            _shut(listener)  # wakes the accept() blocked in its thread
            listener.close()
        for pair in pairs:
            for sock in pair:
                _shut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, server)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._pairs.add(pair)
            done = [0]
            for source, sink in (pair, pair[::-1]):
                threading.Thread(target=self._pump, args=(source, sink, pair, done),
                                 daemon=True).start()

    def _pump(self, source, sink, pair, done) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)  # the end of one direction, passed on
        except OSError:
            pass
        with self._lock:
            done[0] += 1
            if done[0] < 2:
                return
            self._pairs.discard(pair)
        for sock in pair:
            sock.close()


def _check_local(host: str) -> None:
    """The relay listens on the server's own name, which must be this computer: the
    firmware looks the name up and verifies the server's certificate for it."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET)}
    except OSError as e:
        raise SpottyError("cannot look up %s: %s" % (host, e)) from e
    if not all(address.startswith("127.") for address in addresses):
        raise SpottyError("`wifi` events cut servers on this computer only (the mock "
                          "Spotify, iot-local, ota serve): %s is elsewhere" % host)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
