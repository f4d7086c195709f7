"""Running a local HTTPS stand-in (mock Spotify, OTA server) in a background thread."""

import errno
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from socketserver import BaseServer

from .errors import SpottyError

EVERY_ADDRESS = ("", "0.0.0.0", "::")  # a server listening there answers on each network


def address_here(host: str) -> str:
    """The address a client on this machine uses for a server listening on host."""
    return "127.0.0.1" if host in EVERY_ADDRESS else host


class HttpsServing:
    """A local HTTPS server run in a thread, with a certificate from ca for names (kept
    in a temporary folder while it runs). make_server((host, port), ssl_context) builds
    it; port 0 takes a free one. url is the address a client on this machine uses."""

    def __init__(self, make_server: Callable[[tuple, ssl.SSLContext], BaseServer], host: str,
                 port: int, ca, names: tuple[str, ...], name: str) -> None:
        self._tmp = tempfile.mkdtemp(prefix=name + "-")
        try:
            folder = Path(self._tmp)
            ca.issue_server(names).write(folder, "server")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(folder / "server.pem", folder / "server.key.pem")
            self.server = make_server((host, port), context)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.port = self.server.server_address[1]
        self.url = "https://%s:%d" % (address_here(host), self.port)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,),
                                        name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        close_connections = getattr(self.server, "close_connections", None)
        if close_connections:  # open keep-alive connections would outlive the server
            close_connections()
        self.server.server_close()
        self._thread.join()
        shutil.rmtree(self._tmp, ignore_errors=True)


def check_can_listen(host: str, port: int, option: str) -> None:
    """Refuse a busy port in words before a server starts: a server's own bind fails with a
    traceback, and mosquitto's readiness check would find the other listener and go on."""
    if port == 0:  # any free port
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            s.bind((host, port))
        except OSError as e:
            reason = "address in use" if e.errno == errno.EADDRINUSE else (e.strerror or e)
            raise SpottyError("cannot listen on %s:%d: %s (%s)" % (host, port, reason, option)
                              ) from e


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a server listening on `host`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface
