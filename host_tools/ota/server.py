"""Serve firmware bundles from a directory over HTTPS, for tests and `spotty ota serve`.

The certificate comes from a throwaway CA (host_tools.common.pki) unless one is given; a
device downloads only from a server whose CA is in its OTA trust list (ca/ota/*.der),
so that CA's DER must be there (`ca_der`); the CA may vouch for this server's names
only (name constraints). Only OTA bundles directly in the
directory are served (files that begin with the bundle magic: never a key, whatever
lands in the folder later), GET and HEAD only, and a folder that holds a private key is
refused at start (keyplace.py). For tests, `cut_after(name, n)` makes the
next downloads of a file stop after n bytes while announcing the full length, and
`throttle(name, rate)` sends it at `rate` bytes a second.
"""

import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from ..common import pki
from ..common.serving import HttpsServing
from .keyplace import check_servable, open_bundle

CA_NAME = "SpottyPottySense OTA CA"
_CHUNK = 16384
NOT_SERVED = b"not found: this server hands out OTA bundles only\n"
_HANDSHAKE_TIMEOUT_S = 10


class OtaServer:
    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0,
                 ca: pki.CertificateAuthority | None = None):
        self.directory = Path(directory).resolve()
        self.host = host
        self.port = port
        self.names = pki.server_names(host)
        self.ca = ca or pki.CertificateAuthority.create(CA_NAME, self.names)
        self.url = ""
        self._cuts: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._log: list[dict] = []
        self._lock = threading.Lock()
        self._serving: HttpsServing | None = None

    def __enter__(self) -> "OtaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def ca_der(self) -> bytes:
        return self.ca.cert_der

    def url_for(self, name: str) -> str:
        return "%s/%s" % (self.url, name)

    def start(self) -> "OtaServer":
        check_servable(self.directory)
        self._serving = HttpsServing(lambda address, context: _Server(address, self, context),
                                     self.host, self.port, self.ca, self.names, "ota-server")
        self.port, self.url = self._serving.port, self._serving.url
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def cut_after(self, name: str, size: int) -> None:
        """Downloads of `name` stop after `size` bytes (the connection is closed)."""
        with self._lock:
            self._cuts[name] = size

    def throttle(self, name: str, bytes_per_s: float) -> None:
        """Send `name` slowly, as over a poor link."""
        with self._lock:
            self._rates[name] = bytes_per_s

    def requests(self) -> list[dict]:
        """[{"path", "status", "sent", "start", "end"}] of every request, oldest first
        (start and end in time.monotonic())."""
        with self._lock:
            return list(self._log)

    def _record(self, path: str, status: int, sent: int, start: float) -> None:
        with self._lock:
            self._log.append({"path": path, "status": status, "sent": sent, "start": start,
                              "end": time.monotonic()})

    def _cut_for(self, name: str) -> int | None:
        with self._lock:
            return self._cuts.get(name)

    def _rate_for(self, name: str) -> float | None:
        with self._lock:
            return self._rates.get(name)

    def _open(self, target: str) -> tuple[str, BinaryIO] | None:
        """(name, the bundle opened at its start) for a request path, or None."""
        name = unquote(urlsplit(target).path).lstrip("/")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.directory / name
        opened = open_bundle(path) if path.is_file() else None
        return None if opened is None else (name, opened)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, owner: OtaServer, context: ssl.SSLContext):
        super().__init__(address, _Handler)
        self.owner = owner
        self.context = context

    def finish_request(self, request, client_address) -> None:
        request.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return  # e.g. a client that does not trust our CA
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()

    def handle_error(self, request, client_address) -> None:
        pass  # a device that gives up mid-download is not our error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spotty-ota"
    sys_version = ""
    server: _Server

    def log_message(self, format, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        start = time.monotonic()
        found = owner._open(self.path)
        if found is None:
            self._answer(404, NOT_SERVED)
            owner._record(self.path, 404, 0, start)
            return
        name, f = found
        with f:
            sent = self._send_file(name, f, body)
        owner._record(self.path, 200, sent, start)

    def _send_file(self, name: str, f: BinaryIO, body: bool) -> int:
        owner = self.server.owner
        size = os.fstat(f.fileno()).st_size
        cut = owner._cut_for(name) if body else None
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        if cut is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        if body:
            limit = size if cut is None else min(cut, size)
            rate = owner._rate_for(name)
            piece = _CHUNK if rate is None else max(1, int(rate / 10))
            while sent < limit:
                data = f.read(min(piece, limit - sent))
                if not data:
                    break
                try:
                    self.wfile.write(data)
                except OSError:
                    break  # the client gave up
                sent += len(data)
                if rate is not None:
                    time.sleep(len(data) / rate)
        return sent

    def _answer(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(directory: Path, host: str, port: int, ca_dir: Path | None,
          announce: Callable[[dict], None]) -> None:
    """Run an OtaServer until Ctrl-C or SIGTERM; for `spotty ota serve`. With ca_dir the
    CA is kept there (ca.pem, ca.key.pem, ca.der) so devices keep trusting restarts."""
    ca = None
    if ca_dir is not None:
        ca = _load_or_create_ca(Path(ca_dir), pki.server_names(host))
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with OtaServer(directory, host, port, ca) as server:
        info = {"url": server.url, "directory": str(server.directory)}
        elsewhere = [n for n in server.names if n not in pki.LOCAL_NAMES]
        if elsewhere:  # what a board on the network can put in `ota push --url`
            info["board_urls"] = ["https://%s:%d" % (n, server.port) for n in elsewhere]
        if ca_dir is not None:
            info["ca_der"] = str(Path(ca_dir) / "ca.der")
        announce(info)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass


def _load_or_create_ca(directory: Path, names: tuple[str, ...]) -> pki.CertificateAuthority:
    """The CA kept in directory, if its name constraints cover these names; else a new one
    (then the board needs its new ca.der in ca/ota/, and a kept one replaced says so)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path = directory / "ca.pem", directory / "ca.key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            kept = pki.CertificateAuthority(cert, key)
            if kept.permits(names):
                return kept
            print("spotty: warning: the CA kept in %s does not cover %s (this computer's "
                  "addresses changed?): a new one replaces it, and a board refuses this "
                  "server until it has the new %s (spotty provision --ota-ca)"
                  % (directory, ", ".join(names), directory / "ca.der"), file=sys.stderr)
    ca = pki.CertificateAuthority.create(CA_NAME, names)
    ca.write(directory, "ca")
    return ca
