"""Local AWS IoT (`spotty iot-local`, the tests): mosquitto with mutual TLS, the shadow
service on MQTT and the data-plane HTTP API, over one persistent store."""

import json
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
from ..common.errors import SpottyError, UsageError
from .broker import Broker, load_ca
from .shadow import ShadowStore
from .shadow_http import HttpApi
from .shadow_service import SERVICE_IDENTITY, THING_NAME, MqttBinding, ShadowService

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
        return issue_thing(self.ca, name, out_dir)


def issue_thing(ca: pki.CertificateAuthority, name: str, out_dir: Path) -> ThingFiles:
    if not THING_NAME.fullmatch(name):
        raise SpottyError("invalid thing name %r: use letters, digits, ':', '_', '-'" % name)
    out_dir = Path(out_dir)
    ca.issue_client(name).write(out_dir, name)
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


def serve(state_dir: Path, mqtt_port: int, http_port: int, announce: Callable[[dict], None]):
    """Run IotLocal until Ctrl-C or SIGTERM; for `spotty iot-local`. While it runs,
    ENDPOINTS_FILE in state_dir tells other commands (`spotty sim --iot`) where it is."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # A clean exit also stops mosquitto, which would otherwise outlive us.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoints = Path(state_dir) / ENDPOINTS_FILE
    with IotLocal(state_dir, mqtt_port=mqtt_port, http_port=http_port) as iot:
        ca_der = Path(state_dir) / "ca.der"
        ca_der.write_bytes(iot.ca.cert_der)
        info = {
            "mqtt_host": iot.mqtt_host,
            "mqtt_port": iot.mqtt_port,
            "endpoint_url": iot.endpoint_url,
            "ca_der": str(ca_der),
        }
        endpoints.write_text(json.dumps(info))
        try:
            announce(info)
            while not stop.wait(1.0):
                pass
        finally:
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
            urllib.request.urlopen(self.endpoint_url + "/things", timeout=3).close()
        except OSError as e:
            raise SpottyError("the iot-local of %s does not answer at %s: %s" % (
                state_dir, self.endpoint_url, start)) from e
        ca = load_ca(state_dir / "broker")
        if ca is None:
            raise SpottyError("%s has no usable broker CA: %s" % (state_dir / "broker", start))
        self.ca = ca

    def issue_thing(self, name: str, out_dir: Path) -> ThingFiles:
        return issue_thing(self.ca, name, out_dir)


def _address(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return ("127.0.0.1" if host == "localhost" else host), parts.port
