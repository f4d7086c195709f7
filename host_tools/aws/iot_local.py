"""Local AWS IoT (`spotty iot-local`, the tests): mosquitto with mutual TLS, the shadow
service on MQTT and the data-plane HTTP API, over one persistent store."""

import json
import secrets
import signal
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..common import pki
from ..common.errors import RefusedError, SpottyError, UsageError
from . import local_token
from .broker import SERVICE_IDENTITY, THING_NAME, Broker, identity_for, load_ca
from .shadow import ShadowStore
from .shadow_http import PRINCIPAL_HEADER, HttpApi
from .shadow_service import MqttBinding, ShadowService, Watcher
from .tls_delay import HandshakeDelay

ENDPOINTS_FILE = "endpoints.json"


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
    data-plane HTTP API (which wants `http_token`). With `state_dir` the shadows and the
    token survive a restart; without it everything lives in a temporary directory."""

    def __init__(
        self,
        state_dir: Path | None = None,
        mqtt_port: int = 0,
        http_port: int = 0,
        clock: Callable[[], float] = time.time,
        tls_delay_ms: int = 0,
    ):
        self.state_dir = Path(state_dir) if state_dir else None
        # Each device's TLS handshake takes this much longer (an ESP32 spends 2-3 s on a
        # mutual-TLS one): devices then reach the broker through a HandshakeDelay front.
        self.tls_delay_ms = tls_delay_ms
        self.front: HandshakeDelay | None = None
        self._mqtt_port = mqtt_port
        self._http_port = http_port
        self._clock = clock
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._broker: Broker | None = None
        self._mqtt: MqttBinding | None = None
        self._http: HttpApi | None = None
        self.store: ShadowStore | None = None
        self.http_token = ""

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
        """Where devices connect: the broker, or its front when handshakes are delayed."""
        return self.front.port if self.front else self.broker.port

    @property
    def ca(self) -> pki.CertificateAuthority:
        return self.broker.ca

    def start(self) -> "IotLocal":
        if self.state_dir:
            work = self.state_dir / "shadow-service"
            broker_dir: Path | None = self.state_dir / "broker"
            shadows: Path | None = self.state_dir / "shadows.json"
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.http_token = local_token.load_or_create(self.token_file)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="iot-local-")
            work, broker_dir, shadows = Path(self._tmp.name), None, None
            self.http_token = secrets.token_urlsafe(32)
        try:
            if self.tls_delay_ms:
                self._broker = Broker(state_dir=broker_dir).start()
                self.front = HandshakeDelay((self._broker.host, self._broker.port),
                                            self.tls_delay_ms, port=self._mqtt_port).start()
            else:
                self._broker = Broker(state_dir=broker_dir, port=self._mqtt_port).start()
            self.store = ShadowStore(clock=self._clock, path=shadows)
            service = ShadowService(self.store)
            self._mqtt = self._mqtt_binding(service, work)
            self._mqtt.start()
            self._http = HttpApi(service, self.http_token, port=self._http_port,
                                 attach=self._broker.attach)
            self._http.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def token_file(self) -> Path | None:
        return self.state_dir / local_token.FILE_NAME if self.state_dir else None

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
        if self.front:
            self.front.stop()
            self.front = None
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

    def watch(self, topic_filter: str, watcher: Watcher) -> Callable[[], None]:
        """watcher(topic, payload) for every message on the filter, read with the shadow
        service's rights (e.g. `$aws/things/<thing>/shadow/update/accepted`); returns the
        function that stops it."""
        binding = self._running_binding()
        binding.watch(topic_filter, watcher)
        return lambda: binding.unwatch(topic_filter, watcher)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """One message as the shadow service, which may write to every thing's topics."""
        self._running_binding().publish(topic, payload, qos)

    def _running_binding(self) -> MqttBinding:
        if self._mqtt is None:
            raise SpottyError("the local IoT service is not running")
        return self._mqtt

    def issue_thing(self, name: str, out_dir: Path) -> ThingFiles:
        """A client certificate for the thing (attached to it), plus the broker's CA."""
        files = issue_thing(self.ca, name, out_dir)
        if identity_for(name) != name:
            self.broker.attach(identity_for(name), name)
        return files


def issue_thing(ca: pki.CertificateAuthority, name: str, out_dir: Path) -> ThingFiles:
    """A client certificate whose CN is the thing name (or, for a name longer than a CN
    may be, broker.identity_for: attach it then), plus the broker's CA."""
    if name == SERVICE_IDENTITY:
        raise RefusedError("thing name %r is the local stand-in's own shadow service: a "
                           "thing named so would have its rights to every thing" % name)
    if not THING_NAME.fullmatch(name):
        raise RefusedError("invalid thing name %r: use letters, digits, ':', '_', '-'" % name)
    out_dir = Path(out_dir)
    ca.issue_client(identity_for(name)).write(out_dir, name)
    (out_dir / "ca.der").write_bytes(ca.cert_der)
    (out_dir / "ca.pem").write_bytes(ca.cert_pem)
    return ThingFiles(
        cert_der=out_dir / (name + ".der"),
        key_der=out_dir / (name + ".key.der"),
        ca_der=out_dir / "ca.der",
        cert_pem=out_dir / (name + ".pem"),
        key_pem=out_dir / (name + ".key.pem"),
        ca_pem=out_dir / "ca.pem",
    )


def serve(state_dir: Path, mqtt_port: int, http_port: int, announce: Callable[[dict], None],
          tls_delay_ms: int = 0):
    """Run IotLocal until Ctrl-C or SIGTERM; for `spotty iot-local`. While it runs,
    ENDPOINTS_FILE in state_dir tells other commands (`spotty sim --iot`) where it is."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # A clean exit also stops mosquitto, which would otherwise outlive us.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoints = Path(state_dir) / ENDPOINTS_FILE
    with IotLocal(state_dir, mqtt_port=mqtt_port, http_port=http_port,
                  tls_delay_ms=tls_delay_ms) as iot:
        ca_der = Path(state_dir) / "ca.der"
        ca_der.write_bytes(iot.ca.cert_der)
        info = {
            "mqtt_host": iot.mqtt_host,
            "mqtt_port": iot.mqtt_port,
            "endpoint_url": iot.endpoint_url,
            "ca_der": str(ca_der),
            "token_file": str(iot.token_file),
        }
        endpoints.write_text(json.dumps(info))
        # Other spotty commands of this user find the token by the endpoint they are given.
        local_token.record(iot.endpoint_url, iot.http_token)
        try:
            announce(info)
            while not stop.wait(1.0):
                pass
        finally:
            local_token.withdraw(iot.endpoint_url, iot.http_token)
            endpoints.unlink(missing_ok=True)


class RunningIotLocal:
    """A `spotty iot-local` running elsewhere, found through its state directory: its
    endpoints, and its CA to issue a thing's certificate (for `spotty sim --iot`)."""

    def __init__(self, state_dir: Path, endpoint_url: str | None = None):
        state_dir = Path(state_dir)
        start = "start one with `spotty iot-local --state-dir %s`" % state_dir
        try:
            info = json.loads((state_dir / ENDPOINTS_FILE).read_text())
        except (OSError, ValueError) as e:
            raise SpottyError("no running iot-local found in %s: %s" % (state_dir, start)) from e
        self.endpoint_url = info["endpoint_url"]
        self.mqtt_host = info["mqtt_host"]
        self.mqtt_port = int(info["mqtt_port"])
        if endpoint_url and _address(endpoint_url) != _address(self.endpoint_url):
            raise UsageError(
                "the iot-local in %s serves %s, not %s: give --state-dir the state "
                "directory of the one you mean" % (state_dir, self.endpoint_url, endpoint_url))
        try:
            request = urllib.request.Request(self.endpoint_url + "/things", headers={
                local_token.HEADER: local_token.token_for(self.endpoint_url) or ""})
            urllib.request.urlopen(request, timeout=3).close()
        except OSError as e:
            raise SpottyError("the iot-local of %s does not answer at %s: %s" % (
                state_dir, self.endpoint_url, start)) from e
        ca = load_ca(state_dir / "broker")
        if ca is None:
            raise SpottyError("%s has no usable broker CA: %s" % (state_dir / "broker", start))
        self.ca = ca

    def issue_thing(self, name: str, out_dir: Path) -> ThingFiles:
        files = issue_thing(self.ca, name, out_dir)
        if identity_for(name) != name:  # the running stand-in attaches it (its broker's ACL)
            request = urllib.request.Request(
                "%s/things/%s/principals" % (self.endpoint_url, name), method="PUT",
                headers={local_token.HEADER: local_token.token_for(self.endpoint_url) or "",
                         PRINCIPAL_HEADER: identity_for(name)})
            try:
                urllib.request.urlopen(request, timeout=15).close()
            except OSError as e:
                raise SpottyError("the iot-local at %s did not attach the certificate of %s: "
                                  "%s" % (self.endpoint_url, name, e)) from e
        return files


def _address(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return ("127.0.0.1" if host == "localhost" else host), parts.port
