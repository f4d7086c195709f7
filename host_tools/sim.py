"""Run the firmware under the unix-port MicroPython on the simulated board.

A scenario is JSON: {"clock": "2026-11-23T07:00:00Z", "config": {...},
"events": [{"at": 0.5, "pir": 1}, ...], "until": 12.0}. `at` counts seconds
from the moment the firmware reports ready (a negative `at` happens during
boot); `until` ends the run. With a shadow link (IotTarget), an event
{"at": 5.0, "desired": {"timeout_s": 60}} sets desired config in the shadow
through the AWS IoT data-plane API, as `spotty config set` does.
"""

import datetime
import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import devicepath
from .errors import SpottyError
from .pki import pem_or_der_to_der
from .runtime import DEVICE_DIR, micropython_env, micropython_path

BOOT_ALLOWANCE_S = 60


@dataclass
class SpotifyTarget:
    """A Spotify-compatible server the firmware should talk to."""

    url: str
    ca_der: bytes
    client_id: str = "spotty-test-client"
    client_secret: str | None = None
    refresh_token: str = "refresh-0"


@dataclass
class IotTarget:
    """An AWS IoT endpoint (or the local stand-in) and the thing's credentials."""

    host: str
    port: int
    thing: str
    ca_der: bytes
    cert_der: bytes
    key_der: bytes
    endpoint_url: str | None = None  # data-plane HTTP API, for "desired" events


@dataclass
class SimResult:
    events: list = field(default_factory=list)
    console: list = field(default_factory=list)  # non-event lines (tracebacks, prints)
    returncode: int | None = None
    ready_at: float | None = None  # time.monotonic() when the firmware said ready


    def named(self, name):
        return [e for e in self.events if e.get("ev") == name]


def parse_clock(text: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as e:
        raise SpottyError("scenario clock %r is not an ISO 8601 time: %s" % (text, e)) from e
    if moment.tzinfo is None:
        raise SpottyError("scenario clock %r needs a zone, e.g. a trailing Z for UTC" % text)
    return int(moment.timestamp())


def validate_scenario(scenario) -> dict:
    """Check a scenario and return it normalised; raise SpottyError naming the problem."""
    devicepath.install()
    from core import config as config_schema

    if not isinstance(scenario, dict):
        raise SpottyError("a scenario is a JSON object")
    unknown = set(scenario) - {"clock", "config", "events", "until", "device"}
    if unknown:
        raise SpottyError("unknown scenario keys: %s" % ", ".join(sorted(unknown)))
    accepted, refused = config_schema.validate(scenario.get("config", {}))
    if refused:
        raise SpottyError(
            "scenario config refused: "
            + "; ".join("%s: %s" % item for item in sorted(refused.items()))
        )
    until = scenario.get("until")
    if not isinstance(until, (int, float)) or until <= 0:
        raise SpottyError("scenario `until` must be a positive number of seconds")
    events = scenario.get("events", [])
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("at"), (int, float)):
            raise SpottyError("each event needs a numeric `at`: %r" % (event,))
        if "desired" in event:
            if not isinstance(event["desired"], dict) or "pir" in event:
                raise SpottyError("event %r: `desired` must be an object of settings" % (event,))
        elif event.get("pir") not in (0, 1):
            raise SpottyError("event %r: `pir` must be 0 or 1" % (event,))
    return {
        "clock_utc": parse_clock(scenario.get("clock", "2026-01-01T12:00:00Z")),
        "config": accepted,
        "events": events,
        "until": float(until),
        "device": scenario.get("device", {}),
    }


def prepare_flash(flash: Path, scenario: dict, target: SpotifyTarget,
                  iot: IotTarget | None = None) -> None:
    """Lay out the device's flash as provisioning would, plus the scenario for the sim board."""
    (flash / "ca").mkdir(parents=True, exist_ok=True)
    (flash / "ca" / "spotify.der").write_bytes(target.ca_der)
    secrets = {
        "wifi_ssid": "sim-wifi",
        "wifi_password": "sim-password",
        "spotify_client_id": target.client_id,
        "spotify_api_url": target.url,
        "spotify_accounts_url": target.url,
    }
    if target.client_secret:
        secrets["spotify_client_secret"] = target.client_secret
    if iot:
        secrets.update(thing_name=iot.thing, iot_endpoint=iot.host, iot_port=iot.port)
        (flash / "ca" / "iot.der").write_bytes(iot.ca_der)
        (flash / "iot").mkdir(exist_ok=True)
        (flash / "iot" / "cert.der").write_bytes(iot.cert_der)
        (flash / "iot" / "key.der").write_bytes(iot.key_der)
    files = {
        "secrets.json": secrets,
        "token.json": {"refresh_token": target.refresh_token, "issued_at": scenario["clock_utc"]},
        "config.json": scenario["config"],
        "device.json": scenario["device"],
        "sim.json": {"clock_utc": scenario["clock_utc"], "until": scenario["until"],
                     "events": [e for e in scenario["events"] if "pir" in e]},
    }
    for name, content in files.items():
        (flash / name).write_text(json.dumps(content))


def run(scenario: dict, target: SpotifyTarget, *, flash: Path | None = None,
        on_event=None, heapsize: str | None = None, iot: IotTarget | None = None,
        settings: dict | None = None) -> SimResult:
    """Run a validated scenario to its end; events stream to on_event as they come.
    `settings` go into device.json over the scenario's `device` (e.g. single_tls)."""
    own_flash = flash is None
    flash = Path(tempfile.mkdtemp(prefix="spotty-flash-")) if own_flash else flash
    if settings:
        scenario = dict(scenario, device=dict(scenario["device"], **settings))
    desired = [e for e in scenario["events"] if "desired" in e]
    if desired and not (iot and iot.endpoint_url):
        raise SpottyError("`desired` events need the shadow link (spotty sim --iot)")
    try:
        prepare_flash(flash, scenario, target, iot)
        schedule = _DesiredSchedule(iot, desired) if desired else None
        return _run_firmware(flash, scenario["until"] + BOOT_ALLOWANCE_S, on_event, heapsize,
                             schedule)
    finally:
        if own_flash:
            shutil.rmtree(flash, ignore_errors=True)


class _DesiredSchedule:
    """Sets desired config at the scenario's times, counted from the firmware's ready."""

    def __init__(self, iot: IotTarget, events: list):
        from .shadow_client import ShadowClient

        self._client = ShadowClient(iot.thing, iot.endpoint_url)
        self._events = sorted(events, key=lambda e: e["at"])
        self._timers: list[threading.Timer] = []

    def start(self) -> None:
        for event in self._events:
            timer = threading.Timer(max(0.0, event["at"]), self._client.set_desired,
                                    (event["desired"],))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


def _run_firmware(flash: Path, limit_s: float, on_event, heapsize, schedule=None) -> SimResult:
    cmd = [micropython_path()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd.append(str(DEVICE_DIR / "main.py"))
    env = micropython_env()
    env["SPOTTY_SIM"] = str(flash / "sim.json")
    result = SimResult()
    proc = subprocess.Popen(
        cmd, cwd=flash, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    timer = threading.Timer(limit_s, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            event = _as_event(line)
            if event is None:
                result.console.append(line)
                continue
            if event["ev"] == "ready":
                result.ready_at = time.monotonic()
                if schedule:
                    schedule.start()
            result.events.append(event)
            if on_event:
                on_event(event)
        result.returncode = proc.wait()
    finally:
        timer.cancel()
        if schedule:
            schedule.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return result


def _as_event(line: str):
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "ev" in event else None


def target_from_files(url: str, ca_file: str, client_id: str, client_secret: str | None,
                      refresh_token: str) -> SpotifyTarget:
    try:
        ca = pem_or_der_to_der(Path(ca_file).read_bytes())
    except (OSError, ValueError) as e:
        raise SpottyError("cannot use %s as a CA certificate: %s" % (ca_file, e)) from e
    return SpotifyTarget(url.rstrip("/"), ca, client_id, client_secret, refresh_token)
