"""The shadow part of the AWS IoT data-plane REST API, for the local stand-in.

`GET|POST|DELETE /things/<thing>/shadow[?name=]` on loopback, plain HTTP, close enough
that boto3's `iot-data` client works unchanged. `GET /things` is the control plane's
ListThings (boto3's `iot` client): the things that have a shadow, in one page. An
update or delete also publishes the MQTT messages (through ShadowService).
`POST /topics/<topic>?qos=` is the data-plane Publish: the body goes out as one MQTT
message (how `spotty spotify-login --thing` hands over a token). `PUT
/things/<thing>/principals` is the control plane's AttachThingPrincipal, with the
certificate's CN as the principal (for a thing whose name is too long to be a CN, see
broker.py). Every request must carry
the stand-in's token (local_token.py) where AWS checks a signature; without it the answer
is 401 UnauthorizedException.
"""

import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from . import local_token
from .broker import THING_NAME
from .shadow_doc import MAX_REQUEST_BYTES
from .shadow_service import SHADOW_NAME, ShadowService, encode

_PATH = re.compile(r"/things/([^/]+)/shadow")
_PUBLISH_PATH = re.compile(r"/topics/(.+)")
_PRINCIPALS_PATH = re.compile(r"/things/([^/]+)/principals")
PRINCIPAL_HEADER = "x-amzn-principal"  # as boto3's `iot` client sends AttachThingPrincipal's
TOPIC_MAX_BYTES = 256  # AWS IoT's limit for a topic name
ERROR_TYPES = {
    400: "InvalidRequestException",
    401: "UnauthorizedException",
    404: "ResourceNotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    503: "ServiceUnavailableException",
}
THING_ARN = "arn:aws:iot:local:000000000000:thing/%s"
HTTP_OPERATIONS = {"GET": "get", "POST": "update", "DELETE": "delete"}
UNAUTHORIZED = ("missing or wrong %s header: the local stand-in's token is the file %s in "
                "its state dir (spotty sends it itself)" % (local_token.HEADER,
                                                          local_token.FILE_NAME))


class _ShadowHandler(BaseHTTPRequestHandler):
    server: "_ShadowHttpServer"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args) -> None:
        pass

    def _dispatch(self) -> None:
        if not local_token.matches(self.headers.get(local_token.HEADER), self.server.token):
            self._drain()
            return self._error(401, UNAUTHORIZED)
        url = urlsplit(self.path)
        if url.path == "/things" and self.command == "GET":
            return self._list_things()
        publish = _PUBLISH_PATH.fullmatch(url.path)
        if publish:
            return self._publish(unquote(publish.group(1)), parse_qs(url.query))
        principals = _PRINCIPALS_PATH.fullmatch(url.path)
        if principals and self.command == "PUT" and self.server.attach:
            return self._attach(unquote(principals.group(1)))
        match = _PATH.fullmatch(url.path)
        if not match:
            self._drain()
            return self._error(404, "Not Found")
        thing = unquote(match.group(1))
        shadow_name = parse_qs(url.query).get("name", [""])[0]
        op = HTTP_OPERATIONS.get(self.command)
        if op is None:
            self._drain()
            return self._error(405, "Method not allowed: %s" % self.command)
        if not THING_NAME.fullmatch(thing):
            self._drain()
            return self._error(400, "Invalid thing name")
        if shadow_name and not SHADOW_NAME.fullmatch(shadow_name):
            self._drain()
            return self._error(400, "Invalid shadow name")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the unread body makes the stream unusable
            return self._error(413, "The payload exceeds the maximum size allowed")
        body = self.rfile.read(length) if length else b""
        status, doc = self.server.service.handle_http(
            op, thing, shadow_name, body if op == "update" else None
        )
        self._reply(status, doc)

    def _list_things(self) -> None:
        self._drain()
        things = [{"thingName": name, "thingArn": THING_ARN % name, "attributes": {}, "version": 1}
                  for name in self.server.service.store.things()]
        self._reply(200, {"things": things})

    def _attach(self, thing: str) -> None:
        self._drain()
        try:
            self.server.attach(self.headers.get(PRINCIPAL_HEADER, ""), thing)
        except ValueError as e:
            return self._error(400, str(e))
        self._reply(200, {})

    def _publish(self, topic: str, query: dict) -> None:
        """Like AWS IoT's Publish: qos 0 (the default) or 1; the body is the payload."""
        qos = query.get("qos", ["0"])[0]
        problem = None
        if self.command != "POST":
            problem = 405, "Method not allowed: %s" % self.command
        elif qos not in ("0", "1"):
            problem = 400, "qos must be 0 or 1"
        elif query.get("retain", ["false"])[0] != "false":
            problem = 400, "retained messages are not supported by the local stand-in"
        elif not 0 < len(topic.encode()) <= TOPIC_MAX_BYTES or set(topic) & set("+#\0"):
            problem = 400, "Invalid topic name"
        if problem:
            self._drain()
            return self._error(*problem)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            return self._error(413, "The payload exceeds the maximum size allowed")
        body = self.rfile.read(length) if length else b""
        if not self.server.service.handle_publish(topic, body, int(qos)):
            return self._error(503, "The MQTT side of the local stand-in is not connected")
        self._reply(200, {"message": "OK", "traceId": str(uuid.uuid4())})

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_REQUEST_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _error(self, status: int, message: str) -> None:
        self._reply(status, {"code": status, "message": message, "timestamp": int(time.time())})

    def _reply(self, status: int, doc: dict) -> None:
        data = encode(doc)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if status >= 400:
            # botocore names the exception from this header (rest-json protocol).
            error_type = ERROR_TYPES.get(status, "InternalFailureException")
            self.send_header("x-amzn-ErrorType", error_type)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _ShadowHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: ShadowService, token: str,
                 attach: Callable[[str, str], None] | None):
        super().__init__(address, _ShadowHandler)
        self.service = service
        self.token = token
        self.attach = attach


class HttpApi:
    """The shadow part of the AWS IoT data-plane REST API, on loopback, plain HTTP, for
    requests that carry `token`. While it runs, spotty's clients in this process find it."""

    def __init__(self, service: ShadowService, token: str, host: str = "127.0.0.1",
                 port: int = 0, attach: Callable[[str, str], None] | None = None):
        """attach(certificate identity, thing) serves AttachThingPrincipal."""
        self.token = token
        self._server = _ShadowHttpServer((host, port), service, token, attach)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shadow-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (str(host), port)

    def start(self) -> None:
        local_token.register(self.url, self.token)
        self._thread.start()

    def stop(self) -> None:
        local_token.unregister(self.url)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
