"""Run the firmware under the unix-port MicroPython on the simulated board.

A scenario is JSON: {"clock": "2026-11-23T07:00:00Z", "config": {...},
"events": [{"at": 0.5, "pir": 1}, ...], "until": 12.0}. `at` counts seconds
from the moment the firmware reports ready (a negative `at` happens during
boot); `until` ends the run. With a shadow link (IotTarget), an event
{"at": 5.0, "desired": {"timeout_s": 60}} sets desired config in the shadow
through the AWS IoT data-plane API, as `spotty config set` does.
{"at": 5.0, "advance_s": 604800} moves the board's clocks (ticks and UTC) a week
on at once, as if it had idled that long; {"at": 5.0, "rtc_offset_s": 600} moves
its wall clock alone (drift, until the firmware syncs it). "ticks_ms" is the
board's tick counter when it starts (default: 3 s before it wraps, 2**30 ms).
{"at": 5.0, "wifi": 0} cuts the board's network and {"wifi": 1} restores it: the
firmware then reaches every server through a relay (network.py) that the runner
cuts, and the board's network_ok() says so.

Reboots: when the firmware resets the board (exit code 3), the runner starts it
again from the same flash, up to `max_reboots` times; events of every boot go
into one SimResult, each tagged with "boot" (1, 2, ...), and a {"ev": "reboot"}
event marks each restart. The scenario's timeline stands still while the board
is down: `at`, `until` and the clock count the time the firmware has been up
since its "ready", summed over boots (a visit is not missed because the board
rebooted, and `until` bounds the time spent running, not rebooting). A PIR
level still high at a reboot is seen again during the next boot. `desired` and
`wifi` events count wall-clock seconds from the first ready: the shadow and the
network are outside the board, and go on while it reboots.

With install_firmware, the firmware is compiled (as `spotty deploy` would) into
the flash directory and run from there, so an update's file swap is real.
"""

import datetime
import difflib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..common.devicepath import DEVICE_DIR
from ..common.errors import RefusedError, SpottyError
from ..common.pki import pem_or_der_to_der
from .network import Network
from .runtime import micropython_env, micropython_path

# What an ESP32 spends on a TLS handshake, against a few ms on loopback: `spotty sim
# --esp32-tls` and the modelled figures of `make bench` make the stand-ins' handshakes
# take this much longer.
ESP32_TLS_MS = 1000  # the server's certificate only (Spotify)
ESP32_MUTUAL_TLS_MS = 2500  # with the device's own certificate (AWS IoT)
BOOT_ALLOWANCE_S = 60
REBOOT_ALLOWANCE_S = 20
MAX_REBOOTS = 8
RESET_EXIT = 3  # the sim board's reset()


@dataclass
class SpotifyTarget:
    """A Spotify-compatible server the firmware should talk to."""

    url: str
    ca_der: bytes
    client_id: str = "spotty-test-client"
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
    ready_at: float | None = None  # time.monotonic() of the firmware's first ready (see
    # _Runner._closer_ready), where its events' "t" count from
    boots: int = 0

    def named(self, name, boot=None):
        return [e for e in self.events
                if e.get("ev") == name and (boot is None or e.get("boot") == boot)]


def parse_clock(text: str) -> int:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as e:
        raise RefusedError("scenario clock %r is not an ISO 8601 time: %s" % (text, e)) from e
    if moment.tzinfo is None:
        raise RefusedError("scenario clock %r needs a zone, e.g. a trailing Z for UTC" % text)
    return int(moment.timestamp())


EVENT_KEYS = ("at", "pir", "desired", "advance_s", "rtc_offset_s", "wifi")
KINDS = EVENT_KEYS[1:]  # an event has `at` and one of these
HOST_KINDS = ("desired", "wifi")  # done by the runner, not the board (see _Schedule)
TICKS_PERIOD_MS = 1 << 30  # the ESP32's, which the simulated board's ticks wrap at


def validate_scenario(scenario) -> dict:
    """Check a scenario and return it normalised; raise SpottyError naming the problem.
    Settings may be written as for `spotty config set` (tz=Europe/Berlin, 7:00)."""
    from ..common import settings

    if not isinstance(scenario, dict):
        raise RefusedError("a scenario is a JSON object")
    unknown = set(scenario) - {"clock", "config", "events", "until", "device", "ticks_ms"}
    if unknown:
        raise RefusedError("unknown scenario keys: %s" % ", ".join(sorted(unknown)))
    ticks = scenario.get("ticks_ms", TICKS_PERIOD_MS - 3000)
    if not _is_int(ticks) or not 0 <= ticks < TICKS_PERIOD_MS:
        raise RefusedError("scenario `ticks_ms` must be a whole number from 0 to %d (the "
                           "board's tick counter when it starts)" % (TICKS_PERIOD_MS - 1))
    accepted, _ = settings.check(scenario.get("config", {}), "scenario config refused")
    until = scenario.get("until")
    if not isinstance(until, (int, float)) or until <= 0:
        raise RefusedError("scenario `until` must be a positive number of seconds")
    events = [_checked_event(event) for event in scenario.get("events", [])]
    return {
        "clock_utc": parse_clock(scenario.get("clock", "2026-01-01T12:00:00Z")),
        "config": accepted,
        "events": events,
        "until": float(until),
        "device": scenario.get("device", {}),
        "ticks_ms": ticks,
    }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_event(event) -> dict:
    from ..common import settings

    if not isinstance(event, dict) or not isinstance(event.get("at"), (int, float)):
        raise RefusedError("each event needs a numeric `at`: %r" % (event,))
    unknown = sorted(set(event) - set(EVENT_KEYS))
    one_of = "an event has `at` and one of %s" % ", ".join("`%s`" % k for k in KINDS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], EVENT_KEYS, n=1)
        raise RefusedError("event %s: unknown key %s%s (%s)" % (
            json.dumps(event), ", ".join(unknown),
            ", did you mean %s?" % close[0] if close else "", one_of))
    kinds = [k for k in KINDS if k in event]
    if len(kinds) != 1:
        raise RefusedError("event %s: %s" % (json.dumps(event), one_of))
    if kinds[0] in ("advance_s", "rtc_offset_s"):
        return _checked_clock_event(event, kinds[0])
    if "wifi" in event:
        if event["wifi"] not in (0, 1) or isinstance(event["wifi"], bool) or event["at"] < 0:
            raise RefusedError("event %s: `wifi` must be 0 (cut) or 1 (back), at 0 or later"
                               % json.dumps(event))
        return event
    if "desired" in event:
        if not isinstance(event["desired"], dict):
            raise RefusedError("event %r: `desired` must be an object of settings" % (event,))
        # Friendlier forms are read here; the values are the device's to judge (a scenario
        # may test its refusals).
        desired = {}
        for key, value in event["desired"].items():
            try:
                desired[key] = settings.friendlier(key, value)[0]
            except ValueError:
                desired[key] = value
        return dict(event, desired=desired)
    if event.get("pir") not in (0, 1):
        raise RefusedError("event %r: `pir` must be 0 or 1" % (event,))
    return event


def _checked_clock_event(event: dict, kind: str) -> dict:
    value = event[kind]
    if event["at"] < 0:
        raise RefusedError("event %s: `%s` needs an `at` of 0 or more (the board's clocks "
                           "run from its ready)" % (json.dumps(event), kind))
    if not _is_int(value) or (kind == "advance_s" and value <= 0):
        raise RefusedError("event %s: `%s` must be a whole number of seconds%s" % (
            json.dumps(event), kind, " above 0" if kind == "advance_s" else ""))
    return event


def prepare_flash(flash: Path, scenario: dict, target: SpotifyTarget,
                  iot: IotTarget | None = None, wifi_flag: Path | None = None) -> None:
    """Lay out the device's flash as provisioning would, plus the scenario for the sim board
    (wifi_flag: the file that exists while the network is cut, see network.py)."""
    # One trust list per use (device/certs.py): the mock's CA for Spotify only.
    for legacy in (flash / "ca").glob("*.der"):  # a flash kept from before the lists
        legacy.unlink()
    (flash / "ca" / "spotify").mkdir(parents=True, exist_ok=True)
    (flash / "ca" / "spotify" / "mock.der").write_bytes(target.ca_der)
    secrets = {
        "wifi_ssid": "sim-wifi",
        "wifi_password": "sim-password",
        "spotify_client_id": target.client_id,
        "spotify_api_url": target.url,
        "spotify_accounts_url": target.url,
    }
    if iot:
        secrets.update(thing_name=iot.thing, iot_endpoint=iot.host, iot_port=iot.port)
        (flash / "ca" / "iot").mkdir(exist_ok=True)
        (flash / "ca" / "iot" / "local.der").write_bytes(iot.ca_der)
        (flash / "iot").mkdir(exist_ok=True)
        (flash / "iot" / "cert.der").write_bytes(iot.cert_der)
        (flash / "iot" / "key.der").write_bytes(iot.key_der)
    files = {
        "secrets.json": secrets,
        "token.json": {"refresh_token": target.refresh_token, "issued_at": scenario["clock_utc"]},
        "config.json": scenario["config"],
        "device.json": scenario["device"],
    }
    for name, content in files.items():
        (flash / name).write_text(json.dumps(content))
    write_board_scenario(flash / SIM_FILE, {
        "clock_utc": scenario["clock_utc"], "until": scenario["until"],
        "ticks_ms": scenario["ticks_ms"], "wifi_flag": str(wifi_flag) if wifi_flag else None,
    }, [e for e in scenario["events"] if not any(k in e for k in HOST_KINDS)])


SIM_FILE = "sim.jsonl"  # the simulated board's part of the scenario (SPOTTY_SIM names it)


def write_board_scenario(path: Path, header: dict, events: list) -> None:
    """The board's settings on the first line, then its events one a line, in order: the
    board reads each as it comes due, so a month of visits takes no room in its heap."""
    lines = [header] + sorted(events, key=lambda e: e["at"])
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def read_board_scenario(path: Path) -> tuple[dict, list]:
    header, *events = [json.loads(line) for line in path.read_text().splitlines()]
    return header, events


def run(scenario: dict, target: SpotifyTarget, *, flash: Path | None = None,
        on_event=None, heapsize: str | None = None, iot: IotTarget | None = None,
        settings: dict | None = None, install_firmware: bool | Path = False,
        files: dict | None = None, max_reboots: int = MAX_REBOOTS,
        cut: str | None = None, network: Network | None = None) -> SimResult:
    """Run a validated scenario to its end; events stream to on_event as they come.
    `settings` go into device.json over the scenario's `device` (e.g. single_tls).
    install_firmware: True (device/) or a firmware source directory to compile into
    the flash and run from there. files: {path on flash: bytes} laid on top, e.g.
    the OTA public key ota/pub.bin or another CA root in ca/. cut: a checkpoint
    name (see ota/apply.py) at which the power is cut once (kill -9), then restored.
    network: the relays the firmware reaches its servers through, for a caller that
    cuts them itself (e.g. network.url(an OTA server's URL) for desired.ota); made here
    when the scenario has `wifi` events."""
    own_flash = flash is None
    flash = Path(tempfile.mkdtemp(prefix="spotty-flash-")) if own_flash else flash
    if settings:
        scenario = dict(scenario, device=dict(scenario["device"], **settings))
    host_events = [e for e in scenario["events"] if any(k in e for k in HOST_KINDS)]
    if any("desired" in e for e in host_events) and not (iot and iot.endpoint_url):
        raise SpottyError("`desired` events need the shadow link (spotty sim --iot)")
    own_network = network is None and any("wifi" in e for e in host_events)
    if own_network:
        network = Network()
    try:
        if network:
            target, iot = _through(network, target, iot)
        prepare_flash(flash, scenario, target, iot, network.flag if network else None)
        if install_firmware:
            source = DEVICE_DIR if install_firmware is True else Path(install_firmware)
            install(flash, source)
        for rel, data in (files or {}).items():
            (flash / rel).parent.mkdir(parents=True, exist_ok=True)
            (flash / rel).write_bytes(data)
        runner = _Runner(flash, bool(install_firmware), on_event, heapsize, max_reboots, cut)
        if host_events:
            runner.schedule = _Schedule(host_events, iot, network, runner.emit)
        return runner.run(scenario["until"] + BOOT_ALLOWANCE_S)
    finally:
        if own_network:
            network.close()
        if own_flash:
            shutil.rmtree(flash, ignore_errors=True)


def _through(network: Network, target: SpotifyTarget, iot: IotTarget | None):
    """The targets as the firmware reaches them: through the network's relays."""
    target = replace(target, url=network.url(target.url))
    if iot:
        iot = replace(iot, port=network.relay(iot.host, iot.port))
    return target, iot


_compiled: dict[str, dict[str, bytes]] = {}


def install(flash: Path, source: Path = DEVICE_DIR) -> list[str]:
    """Put the compiled firmware (and the sim board, which a deploy leaves out) on flash."""
    from ..board.deploy import OPTIMISE, compile_firmware

    source = Path(source)
    files = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    key = digest.hexdigest()
    if key not in _compiled:
        with tempfile.TemporaryDirectory(prefix="spotty-build-") as tmp:
            built = compile_firmware(source, Path(tmp) / "fw")
            sim_board = source / "board" / "sim.py"
            out = Path(tmp) / "sim.mpy"
            result = subprocess.run(
                [_mpy_cross(), OPTIMISE, "-s", "board.sim", "-o", str(out), str(sim_board)],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise SpottyError("mpy-cross failed on board/sim.py:\n" + result.stderr)
            built["board/sim.mpy"] = out.read_bytes()
        _compiled[key] = built
    for rel, data in _compiled[key].items():
        target = flash / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return sorted(_compiled[key])


def _mpy_cross() -> str:
    from ..board.deploy import mpy_cross_path

    return mpy_cross_path()


class _Schedule:
    """The events outside the board, at the scenario's times counted from the firmware's
    first ready: desired config set in the shadow, the network cut and restored."""

    def __init__(self, events: list, iot: IotTarget | None, network: Network | None, emit):
        self._client = None
        if any("desired" in e for e in events):
            from ..aws.shadow_client import ShadowClient

            self._client = ShadowClient(iot.thing, iot.endpoint_url)
        self._network = network
        self._emit = emit
        self._events = sorted(events, key=lambda e: e["at"])
        self._timers: list[threading.Timer] = []

    def start(self) -> None:
        for event in self._events:
            timer = threading.Timer(max(0.0, event["at"]), self._do, (event,))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _do(self, event: dict) -> None:
        if "desired" in event:
            self._client.set_desired(event["desired"])
        else:
            # Logged first: the board's reaction may come before set() returns.
            self._emit({"ev": "wifi", "wifi": event["wifi"]})
            self._network.set(bool(event["wifi"]))

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


class _Runner:
    """Runs the firmware, and again after each reset or power cut, until the end."""

    def __init__(self, flash: Path, installed: bool, on_event, heapsize, max_reboots: int,
                 cut: str | None):
        self.flash = flash
        self.installed = installed
        self.on_event = on_event
        self.heapsize = heapsize
        self.schedule: _Schedule | None = None
        self.max_reboots = max_reboots
        self.cut = cut
        self.result = SimResult()
        self._boot_ready: float | None = None  # time.monotonic() of this boot's ready
        self._emitting = threading.Lock()  # the board's output and the schedule's events

    def _command(self) -> tuple[list[str], dict]:
        cmd = [micropython_path()]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        if self.installed:
            # From the flash, as the board runs it. Not as a script: that would put the
            # flash's absolute path first on sys.path. "" is the flash, the working
            # directory, as on the ESP32: a module's __file__ (an interned string for
            # good) is "net/mqtt.mpy", as on a board, not "/tmp/spotty-flash-.../net/...".
            cmd += ["-m", "main"]
            env = dict(os.environ, MICROPYPATH=os.pathsep.join(["", ".frozen"]))
        else:
            cmd.append(str(DEVICE_DIR / "main.py"))
            env = micropython_env()
        env["SPOTTY_SIM"] = str(self.flash / SIM_FILE)
        env.pop("SPOTTY_CUT", None)
        if self.cut:
            env["SPOTTY_CUT"] = self.cut
        return cmd, env

    def run(self, limit_s: float) -> SimResult:
        result = self.result
        deadline = time.monotonic() + limit_s
        try:
            while True:
                result.boots += 1
                code, up_s = self._boot(deadline)
                if code == RESET_EXIT or code == "cut":
                    if result.boots > self.max_reboots or time.monotonic() >= deadline:
                        result.returncode = RESET_EXIT if code == "cut" else code
                        return result
                    if not _advance_timeline(self.flash / SIM_FILE, up_s):
                        result.returncode = 0  # the scenario ended with the reboot
                        return result
                    deadline += REBOOT_ALLOWANCE_S
                    self._emit({"ev": "reboot", "why": "power_cut" if code == "cut" else "reset"},
                               result.boots + 1)
                    continue
                result.returncode = code
                return result
        finally:
            if self.schedule:
                self.schedule.cancel()

    def _boot(self, deadline: float):
        """Run one boot; (exit code or "cut", seconds it was up since ready)."""
        cmd, env = self._command()
        proc = subprocess.Popen(cmd, cwd=self.flash, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), proc.kill)
        timer.start()
        ready_at = self._boot_ready = None
        up_s = 0.0
        cut = False
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                event = _as_event(line)
                if event is None:
                    self.result.console.append(line)
                    continue
                if event["ev"] == "ready":
                    ready_at = self._boot_ready = time.monotonic()
                    if self.result.ready_at is None:
                        self.result.ready_at = ready_at
                        if self.schedule:
                            self.schedule.start()
                elif event["ev"] == "reset":
                    up_s = event.get("uptime_ms", 0) / 1000
                elif event["ev"] == "cut":
                    os.kill(proc.pid, signal.SIGKILL)  # the power cut, at exactly that point
                    cut = True
                    self.cut = None  # power comes back for good
                    up_s = time.monotonic() - ready_at if ready_at else 0.0
                if self.result.boots == 1 and "t" in event and ready_at is not None:
                    self._closer_ready(event["t"])
                self._emit(event, self.result.boots)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return ("cut" if cut else code), up_s

    def _closer_ready(self, t: int) -> None:
        """The first boot's ready as the board's own clock puts it (ready_at is when this
        end read the line: later by however long the read waited). An event stamped t ms
        after ready was written before it was read, so ready came at most t ms before
        the read, give or take the 1 ms the two stamps were rounded to. Mock Spotify's
        request times compare with the board's times this way, on any machine load."""
        at = time.monotonic() - (t - 1) / 1000
        self.result.ready_at = min(self.result.ready_at, at)

    def emit(self, event: dict) -> None:
        """An event of the world outside the board, in the boot under way."""
        ready = self._boot_ready
        if ready is not None:
            event["t"] = int((time.monotonic() - ready) * 1000)
        self._emit(event, self.result.boots)

    def _emit(self, event: dict, boot: int) -> None:
        with self._emitting:
            event["boot"] = boot
            self.result.events.append(event)
            if self.on_event:
                self.on_event(event)


def _advance_timeline(sim_file: Path, up_s: float) -> bool:
    """Move the scenario on by the time the board was up; False if nothing is left."""
    scenario, board_events = read_board_scenario(sim_file)
    until = scenario["until"] - up_s
    if until <= 0:
        return False
    level = 0
    clock_utc = scenario["clock_utc"] + int(up_s)
    events = []
    for event in board_events:
        at = event["at"] - up_s
        if at >= 0:
            events.append(dict(event, at=at))
        elif "pir" in event:
            level = event["pir"]  # happened while up; only the level is left of it
        else:  # the clock jumped on; drift is gone, as the boot syncs the clock
            clock_utc += event.get("advance_s", 0)
    if level:
        events.insert(0, {"at": -0.001, "pir": 1})  # still there during the next boot
    scenario.update(clock_utc=clock_utc, until=until)
    write_board_scenario(sim_file, scenario, events)
    return True


def _as_event(line: str):
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "ev" in event else None


def target_from_files(url: str, ca_file: str, client_id: str,
                      refresh_token: str) -> SpotifyTarget:
    try:
        ca = pem_or_der_to_der(Path(ca_file).read_bytes())
    except (OSError, ValueError) as e:
        raise SpottyError("cannot use %s as a CA certificate: %s" % (ca_file, e)) from e
    return SpotifyTarget(url.rstrip("/"), ca, client_id, refresh_token)
