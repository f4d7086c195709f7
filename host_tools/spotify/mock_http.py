"""HTTP/1.1 over TLS for the mock Spotify: requests in, answers out.

The server wraps each connection in TLS in its own thread, counts connections, and
hands every request to the mock (`_receive`, `_reply_for`, `_answered`); answers are
framed by Content-Length or chunked, kept alive or closed, as the mock is configured.
Both of Spotify's error shapes are here, as every part of the mock answers with them.
"""

import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

CHUNK_SIZE = 128  # small, so that even short answers go out as several chunks
MAX_REQUEST_BODY = 1 << 20
HANDSHAKE_TIMEOUT_S = 10.0
_JSON = "application/json; charset=utf-8"


# -- answers --------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: object = None  # dict/list: sent as JSON; bytes: sent as they are; None: no body
    headers: dict = field(default_factory=dict)
    content_type: str = _JSON
    truncate: bool = False  # announce the full length, send half of it, then close

    def payload(self) -> bytes:
        if self.body is None or self.status in (204, 304):
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def api_error(status: int, message: str, reason: str | None = None, **headers) -> Reply:
    """The Web API's error shape: {"error": {"status", "message"[, "reason"]}}."""
    error = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return Reply(status, {"error": error}, dict(headers))


def oauth_error(error: str, description: str, status: int = 400) -> Reply:
    """The accounts service's error shape (RFC 6749): {"error", "error_description"}."""
    return Reply(status, {"error": error, "error_description": description})


# -- requests -------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    body: object  # JSON value, dict of form fields, or None
    form: bool = False
    malformed: bool = False  # a JSON body that does not parse

    @property
    def auth(self) -> str:
        scheme = self.headers.get("authorization", "").split(" ", 1)[0].lower()
        return scheme if scheme in ("basic", "bearer") else "none"


def parse_request(method: str, target: str, headers: dict, raw: bytes) -> Request:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    headers = {k.lower(): v for k, v in headers.items()}
    request = Request(method, parts.path, query, headers, None)
    if not raw:
        return request
    content_type = headers.get("content-type", "").lower()
    if "application/x-www-form-urlencoded" in content_type:
        request.form = True
        request.body = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return request
    try:
        request.body = json.loads(raw)
    except ValueError:
        request.malformed = True
    return request


# -- HTTP over TLS --------------------------------------------------------------------------

class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, mock, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.mock = mock  # the MockSpotify that answers
        self.context = context
        self._open: dict[ssl.SSLSocket, int] = {}
        self._open_lock = threading.Lock()

    def finish_request(self, request, client_address) -> None:
        # The handshake runs in the connection's own thread, so a stalled or refused
        # handshake never holds up accepting other connections.
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        # As production servers do: an answer's body follows its headers at once, not
        # after the client's delayed ACK of them (Nagle's algorithm: some 40 ms each).
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.mock.tls_delay_ms:  # the board's CPU, as if its side of the handshake ran here
            self.mock._stopping.wait(self.mock.tls_delay_ms / 1000)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return  # e.g. the client did not trust our CA: no HTTP request ever arrived
        with self._open_lock:
            self._open[conn] = self.mock._connected()
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._open_lock:
                self._open.pop(conn, None)
            conn.close()

    def connection_number(self, conn) -> int:
        with self._open_lock:
            return self._open.get(conn, 0)

    def close_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                # Below the TLS layer: the connection's thread may be inside a TLS read.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        pass  # clients vanishing mid-answer are part of the tests; route bugs answer 500


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-spotify"
    sys_version = ""
    server: MockServer

    def setup(self) -> None:
        self.timeout = self.server.mock.idle_timeout
        super().setup()

    def log_message(self, format, *args) -> None:
        pass  # the mock's request log is the record

    def do_GET(self) -> None:
        try:
            self._serve()
        except OSError:
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        mock = self.server.mock
        raw = self._read_body()
        if raw is None:
            return
        request = parse_request(self.command, self.path, dict(self.headers.items()), raw)
        entry, rule = mock._receive(request, self.server.connection_number(self.connection))
        kind = rule["kind"] if rule else None
        if kind in ("drop", "garbage"):
            if kind == "garbage":
                self.wfile.write(b"\x15\x03\x03\x00\x02garbage, not HTTP\x00\xff\r\n\r\n")
            self.close_connection = True
            return
        if kind == "slow":
            mock._stopping.wait(rule.get("delay", 1.0))
        reply = mock._reply_for(kind, rule, request)
        mock._answered(entry, reply.status)
        self._send(reply)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit() or int(length) > MAX_REQUEST_BODY:
            self.send_error(413 if length.isdigit() else 400)
            self.close_connection = True
            return None
        return self.rfile.read(int(length))

    def _read_chunked_body(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                self.send_error(400, "bad chunk size")
                self.close_connection = True
                return None
            total += size
            if total > MAX_REQUEST_BODY:
                self.send_error(413)
                self.close_connection = True
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        framed = reply.status not in (204, 304)
        chunked = bool(framed and payload and self.server.mock.chunked and not reply.truncate)
        if payload:
            self.send_header("Content-Type", reply.content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif framed:
            self.send_header("Content-Length", str(len(payload)))
        if reply.truncate or not self.server.mock.keepalive:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if reply.truncate:
            self.wfile.write(payload[: len(payload) // 2])
        elif chunked:
            self.wfile.write(_chunks(payload))
        elif payload:
            self.wfile.write(payload)


def _chunks(payload: bytes) -> bytes:
    out = []
    for start in range(0, len(payload), CHUNK_SIZE):
        piece = payload[start:start + CHUNK_SIZE]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)
