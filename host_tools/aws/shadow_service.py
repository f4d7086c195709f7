"""The local stand-in for AWS IoT's Device Shadow service: one ShadowStore, two bindings.

- MQTT (here): a client with the broker's SERVICE_IDENTITY on the local mosquitto (mutual
  TLS) answers `$aws/things/<thing>/shadow[/name/<shadow>]/{update,get,delete}` on the
  reserved response topics, as AWS IoT does.
- HTTP (shadow_http.py): the data-plane REST API, close enough that boto3's `iot-data`
  client works unchanged. An HTTP update or delete also publishes the MQTT messages,
  which is how `spotty config set` reaches the board.

`IotLocal` (iot_local.py) runs the broker, both bindings and a persistent store together.
"""

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from ..common.errors import SpottyError
from .broker import SERVICE_IDENTITY
from .shadow import ShadowStore
from .shadow_doc import Message

OPERATIONS = ("update", "get", "delete")
SUBSCRIPTIONS = [f"$aws/things/+/shadow/{op}" for op in OPERATIONS] + [
    f"$aws/things/+/shadow/name/+/{op}" for op in OPERATIONS
]
SHADOW_NAME = re.compile(r"[A-Za-z0-9:_-]{1,64}")
_TOPIC = re.compile(r"\$aws/things/([^/]+)/shadow(?:/name/([^/]+))?/(update|get|delete)")

Publish = Callable[..., None]  # (topic, payload, qos=1)
Watcher = Callable[[str, bytes], None]  # (topic, payload)


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
        self._watchers: list[tuple[str, Watcher]] = []
        self._acks = threading.Condition()
        self._acked: set[int] = set()
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

    def watch(self, topic_filter: str, watcher: Watcher, timeout: float = 10.0) -> None:
        """Also hand every message on `topic_filter` to watcher(topic, payload), with the
        service's right to read every thing's topics (tests watch a shadow so). Meant for
        topics the service does not answer itself, such as `.../update/accepted`."""
        with self._acks:
            self._watchers.append((topic_filter, watcher))
        _, mid = self.client.subscribe(topic_filter, 1)
        with self._acks:
            acked = self._acks.wait_for(lambda: mid in self._acked, timeout)
            self._acked.discard(mid)
        if not acked:
            raise SpottyError("shadow service: could not subscribe to %s" % topic_filter)

    def unwatch(self, topic_filter: str, watcher: Watcher) -> None:
        with self._acks:
            self._watchers.remove((topic_filter, watcher))
            still = any(f == topic_filter for f, _ in self._watchers)
        if not still:
            self.client.unsubscribe(topic_filter)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            # Subscribing here, not once, restores the subscriptions after a reconnect.
            with self._acks:
                watched = {f for f, _ in self._watchers}
            client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS + sorted(watched)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if all(not code.is_failure for code in reason_codes):
            self._subscribed.set()
            with self._acks:
                self._acked.add(mid)
                self._acks.notify_all()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.service.handle_mqtt(message.topic, message.payload)
        with self._acks:
            watchers = [w for f, w in self._watchers if mqtt.topic_matches_sub(f, message.topic)]
        for watcher in watchers:
            watcher(message.topic, message.payload)
