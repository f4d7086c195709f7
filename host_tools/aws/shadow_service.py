"""The local stand-in for AWS IoT's Device Shadow service: one ShadowStore, two bindings.

- MQTT: a client named "shadow-service" on the local mosquitto (mutual TLS) answers
  `$aws/things/<thing>/shadow[/name/<shadow>]/{update,get,delete}` on the reserved
  response topics, as AWS IoT does.
- HTTP: the data-plane REST API (`GET|POST|DELETE /things/<thing>/shadow[?name=]`)
  on loopback, close enough that boto3's `iot-data` client works unchanged. An HTTP
  update or delete also publishes the MQTT messages, which is how `spotty config set`
  reaches the board. `POST /topics/<topic>?qos=` is the data-plane Publish: the body
  goes out as one MQTT message (how `spotty spotify-login --thing` hands over a token).

`IotLocal` runs the broker, both bindings and a persistent store together.
"""

import json
import re
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt

from ..common import pki
from ..common.errors import SpottyError
from .broker import Broker
from .shadow import ShadowStore
from .shadow_doc import MAX_REQUEST_BYTES, Message

SERVICE_IDENTITY = "shadow-service"
OPERATIONS = ("update", "get", "delete")
SUBSCRIPTIONS = [f"$aws/things/+/shadow/{op}" for op in OPERATIONS] + [
    f"$aws/things/+/shadow/name/+/{op}" for op in OPERATIONS
]
THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
SHADOW_NAME = re.compile(r"[A-Za-z0-9:_-]{1,64}")
_TOPIC = re.compile(r"\$aws/things/([^/]+)/shadow(?:/name/([^/]+))?/(update|get|delete)")
_PATH = re.compile(r"/things/([^/]+)/shadow")
_PUBLISH_PATH = re.compile(r"/topics/(.+)")
TOPIC_MAX_BYTES = 256  # AWS IoT's limit for a topic name
ERROR_TYPES = {
    400: "InvalidRequestException",
    404: "ResourceNotFoundException",
    405: "MethodNotAllowedException",
    409: "ConflictException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedDocumentEncodingException",
    503: "ServiceUnavailableException",
}
HTTP_OPERATIONS = {"GET": "get", "POST": "update", "DELETE": "delete"}

Publish = Callable[..., None]  # (topic, payload, qos=1)


def topic_prefix(thing: str, shadow_name: str = "") -> str:
    if shadow_name:
        return f"$aws/things/{thing}/shadow/name/{shadow_name}"
    return f"$aws/things/{thing}/shadow"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """(thing, shadow name or "", operation) of a request topic, else None."""
    match = _TOPIC.fullmatch(topic)
    if not match:
        return None
    return match.group(1), match.group(2) or "", match.group(3)


def encode(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


class ShadowService:
    """Runs requests against the store and publishes the answers.

    `publish` is set by the MQTT binding; without one, answers meant for MQTT are
    dropped (nobody could be subscribed to them anyway).
    """

    def __init__(self, store: ShadowStore, publish: Publish | None = None):
        self.store = store
        self.publish = publish
        # Answers leave in the order the store produced them, across both bindings.
        self._lock = threading.Lock()

    def _run(self, op: str, thing: str, shadow_name: str, payload: bytes | None) -> list[Message]:
        operation = getattr(self.store, op)
        return operation(thing, payload, shadow_name=shadow_name)

    def _send(self, thing: str, shadow_name: str, messages: list[Message]) -> None:
        if self.publish is None:
            return
        prefix = topic_prefix(thing, shadow_name)
        for suffix, doc in messages:
            self.publish(f"{prefix}/{suffix}", encode(doc))

    def handle_mqtt(self, topic: str, payload: bytes | bytearray) -> None:
        parsed = parse_topic(topic)
        if parsed is None:
            return
        thing, shadow_name, op = parsed
        with self._lock:
            self._send(thing, shadow_name, self._run(op, thing, shadow_name, bytes(payload)))

    def handle_http(
        self, op: str, thing: str, shadow_name: str, body: bytes | None
    ) -> tuple[int, dict]:
        """(HTTP status, document). Accepted updates and deletes also go out on MQTT;
        rejections do not, as AWS sends REST errors only to the caller."""
        with self._lock:
            messages = self._run(op, thing, shadow_name, body)
            suffix, reply = messages[0]
            if suffix.endswith("/rejected"):
                return reply["code"], reply
            if op != "get":
                self._send(thing, shadow_name, messages)
            return 200, reply

    def handle_publish(self, topic: str, payload: bytes, qos: int) -> bool:
        """The data-plane Publish: one message out on MQTT; False while not connected."""
        with self._lock:
            if self.publish is None:
                return False
            self.publish(topic, payload, qos=qos)
            return True


# ---------------------------------------------------------------------------
# MQTT


class MqttBinding:
    """The service's own MQTT client: subscribes to the request topics of all things."""

    def __init__(
        self,
        service: ShadowService,
        host: str,
        port: int,
        ca_file: Path,
        cert_file: Path,
        key_file: Path,
    ):
        self.service = service
        self.host, self.port = host, port
        self._subscribed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=SERVICE_IDENTITY,
            protocol=mqtt.MQTTv311,
        )
        client.tls_set(ca_certs=str(ca_file), certfile=str(cert_file), keyfile=str(key_file))
        # Loopback: come back at once after a broker restart, as the real service never leaves.
        client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    def start(self, timeout: float = 10.0) -> None:
        # Set before connecting: requests can arrive as soon as the subscriptions exist.
        self.service.publish = self.publish
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise SpottyError(
                "shadow service: no MQTT subscription at %s:%d within %.0f s"
                % (self.host, self.port, timeout)
            )

    def stop(self) -> None:
        self.service.publish = None
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            # Subscribing here, not once, restores the subscriptions after a reconnect.
            client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not code.is_failure for code in reason_codes):
            self._subscribed.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.service.handle_mqtt(message.topic, message.payload)


# ---------------------------------------------------------------------------
# HTTP


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
        url = urlsplit(self.path)
        publish = _PUBLISH_PATH.fullmatch(url.path)
        if publish:
            return self._publish(unquote(publish.group(1)), parse_qs(url.query))
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

    def __init__(self, address: tuple[str, int], service: ShadowService):
        super().__init__(address, _ShadowHandler)
        self.service = service


class HttpApi:
    """The shadow part of the AWS IoT data-plane REST API, on loopback, plain HTTP."""

    def __init__(self, service: ShadowService, host: str = "127.0.0.1", port: int = 0):
        self._server = _ShadowHttpServer((host, port), service)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shadow-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (str(host), port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------
# Everything together


@dataclass
class ThingFiles:
    """A thing's credentials as written by IotLocal.issue_thing (DER for the device)."""

    cert_der: Path
    key_der: Path
    ca_der: Path
    cert_pem: Path
    key_pem: Path
    ca_pem: Path


class IotLocal:
    """Local AWS IoT: mosquitto with mutual TLS, the shadow service on MQTT, and the
    data-plane HTTP API. With `state_dir` the shadows survive a restart; without it
    everything lives in a temporary directory."""

    def __init__(
        self,
        state_dir: Path | None = None,
        mqtt_port: int = 0,
        http_port: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self.state_dir = Path(state_dir) if state_dir else None
        self._mqtt_port = mqtt_port
        self._http_port = http_port
        self._clock = clock
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._broker: Broker | None = None
        self._mqtt: MqttBinding | None = None
        self._http: HttpApi | None = None
        self.store: ShadowStore | None = None

    def __enter__(self) -> "IotLocal":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise SpottyError("the local IoT service is not running")
        return self._broker

    @property
    def endpoint_url(self) -> str:
        if self._http is None:
            raise SpottyError("the local IoT service is not running")
        return self._http.url

    @property
    def mqtt_host(self) -> str:
        return self.broker.host

    @property
    def mqtt_port(self) -> int:
        return self.broker.port

    @property
    def ca(self) -> pki.CertificateAuthority:
        return self.broker.ca

    def start(self) -> "IotLocal":
        if self.state_dir:
            work = self.state_dir / SERVICE_IDENTITY
            broker_dir: Path | None = self.state_dir / "broker"
            shadows: Path | None = self.state_dir / "shadows.json"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="iot-local-")
            work, broker_dir, shadows = Path(self._tmp.name), None, None
        try:
            self._broker = Broker(state_dir=broker_dir, port=self._mqtt_port).start()
            self.store = ShadowStore(clock=self._clock, path=shadows)
            service = ShadowService(self.store)
            self._mqtt = self._mqtt_binding(service, work)
            self._mqtt.start()
            self._http = HttpApi(service, port=self._http_port)
            self._http.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _mqtt_binding(self, service: ShadowService, work: Path) -> MqttBinding:
        self.broker.issue_client(SERVICE_IDENTITY).write(work, "client")
        (work / "ca.pem").write_bytes(self.broker.ca.cert_pem)
        return MqttBinding(
            service,
            self.broker.host,
            self.broker.port,
            ca_file=work / "ca.pem",
            cert_file=work / "client.pem",
            key_file=work / "client.key.pem",
        )

    def stop(self) -> None:
        if self._http:
            self._http.stop()
            self._http = None
        if self._mqtt:
            self._mqtt.stop()
            self._mqtt = None
        if self._broker:
            self._broker.__exit__(None, None, None)
            self._broker = None
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def issue_thing(self, name: str, out_dir: Path) -> ThingFiles:
        """A client certificate whose CN is the thing name, plus the broker's CA."""
        if not THING_NAME.fullmatch(name):
            raise SpottyError("invalid thing name %r: use letters, digits, ':', '_', '-'" % name)
        out_dir = Path(out_dir)
        self.broker.issue_client(name).write(out_dir, name)
        (out_dir / "ca.der").write_bytes(self.ca.cert_der)
        (out_dir / "ca.pem").write_bytes(self.ca.cert_pem)
        return ThingFiles(
            cert_der=out_dir / (name + ".der"),
            key_der=out_dir / (name + ".key.der"),
            ca_der=out_dir / "ca.der",
            cert_pem=out_dir / (name + ".pem"),
            key_pem=out_dir / (name + ".key.pem"),
            ca_pem=out_dir / "ca.pem",
        )


def serve(state_dir: Path, mqtt_port: int, http_port: int, announce: Callable[[dict], None]):
    """Run IotLocal until Ctrl-C or SIGTERM; for `spotty iot-local`."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # A clean exit also stops mosquitto, which would otherwise outlive us.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with IotLocal(state_dir, mqtt_port=mqtt_port, http_port=http_port) as iot:
        ca_der = Path(state_dir) / "ca.der"
        ca_der.write_bytes(iot.ca.cert_der)
        announce({
            "mqtt_host": iot.mqtt_host,
            "mqtt_port": iot.mqtt_port,
            "endpoint_url": iot.endpoint_url,
            "ca_der": str(ca_der),
        })
        while not stop.wait(1.0):
            pass
