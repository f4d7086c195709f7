"""Running a local HTTPS stand-in (mock Spotify, OTA server) in a background thread."""

import threading
from socketserver import BaseServer


def serve_in_thread(server: BaseServer, host: str, name: str) -> tuple[int, str, threading.Thread]:
    """Start serving; (port, https URL a client on this machine can use, thread)."""
    port = server.server_address[1]
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name=name, daemon=True)
    thread.start()
    return port, "https://%s:%d" % (shown, port), thread
