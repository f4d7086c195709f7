"""Running a local HTTPS stand-in (mock Spotify, OTA server) in a background thread."""

import errno
import ipaddress
import socket
import threading
from socketserver import BaseServer

from .errors import SpottyError


def serve_in_thread(server: BaseServer, host: str, name: str) -> tuple[int, str, threading.Thread]:
    """Start serving; (port, https URL a client on this machine can use, thread)."""
    port = server.server_address[1]
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name=name, daemon=True)
    thread.start()
    return port, "https://%s:%d" % (shown, port), thread


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
