"""`spotty dashboard` in a real browser (Debian's Chromium, headless) against a running
`spotty iot-local`, with a simulated device that has had a few sessions on a few days
(`spotty sim --endpoint-url`), and one that runs while its settings are changed in the form.

The screenshots land in .sim/dashboard/ (the README's docs/dashboard.png is one of them).
"""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from browser import Browser
from iot_process import IotLocalProcess
from needs import needs_chromium, needs_mosquitto

from host_tools import cli
from host_tools.aws.shadow_client import ShadowClient
from host_tools.common.devicepath import REPO
from host_tools.common.errors import EXIT_INTERRUPTED

pytestmark = [needs_mosquitto, needs_chromium]
THING = "sim-bathroom"
SHOTS = REPO / ".sim" / "dashboard"
CONFIG = {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0,
          "tz": "CET-1CEST,M3.5.0,M10.5.0/3"}


def scenario(tmp_path, clock: str, sessions: int, until: float, stay: float = 0.5) -> str:
    """`sessions` visits of `stay` seconds from `clock` on, then quiet until `until`."""
    events = []
    for n in range(sessions):
        at = 0.5 + (stay + 2.0) * n
        events += [{"at": at, "pir": 1}, {"at": at + stay, "pir": 0}]
    path = tmp_path / ("scenario-%s.json" % clock.replace(":", ""))
    path.write_text(json.dumps({"clock": clock, "config": CONFIG, "events": events,
                                "until": until}))
    return str(path)


@pytest.fixture(scope="module")
def iot_local(tmp_path_factory):
    running = IotLocalProcess(tmp_path_factory.mktemp("iot-local"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dashboard(iot_local):
    """`spotty dashboard --endpoint-url ...`, as the README runs it; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "dashboard", "--endpoint-url",
         iot_local.endpoint_url, "--port", str(port), "--refresh", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = "http://127.0.0.1:%d" % port
    line = proc.stdout.readline()
    assert "SpottyPottySense dashboard on %s/" % url in line, line
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/static/live.js", timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the dashboard does not answer"
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    opened = Browser(width=1280, height=900)
    yield opened
    opened.close()


class LiveDevice:
    """`spotty sim --endpoint-url ... --json` in the background: the board is up and its
    shadow link live while the test uses the dashboard."""

    def __init__(self, iot_local, scenario_path: str, flash):
        self.events: list[dict] = []
        self._link_up = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "sim", scenario_path, "--json",
             "--thing", THING, "--endpoint-url", iot_local.endpoint_url, "--state-dir",
             str(iot_local.state_dir), "--flash", str(flash)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.console: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._link_up.wait(60), "the simulated board's shadow link did not come up:\n" + \
            "\n".join(self.console[-20:])

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.console.append(line.rstrip())
            if line.startswith("{"):
                event = json.loads(line)
                self.events.append(event)
                if event.get("ev") == "shadow_up":
                    self._link_up.set()

    def stop(self) -> int:
        """Ctrl-C, as a user stops `spotty sim`; its exit code once all it said is read."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


def test_overview_device_page_and_a_setting_that_reaches_the_device(
        iot_local, dashboard, browser, tmp_path):
    flash = tmp_path / "flash"  # kept between runs: the statistics add up, as on a board
    for clock, sessions, stay in (("2026-11-18T06:50:00Z", 2, 2.5),
                                  ("2026-11-20T17:30:00Z", 1, 5.0),
                                  ("2026-11-21T06:40:00Z", 3, 0.5)):
        until = 3.0 + (stay + 2.0) * sessions
        code = cli.main(["sim", scenario(tmp_path, clock, sessions, until, stay),
                         "--thing", THING, "--endpoint-url", iot_local.endpoint_url,
                         "--state-dir", str(iot_local.state_dir), "--flash", str(flash)])
        assert code == 0
    device = LiveDevice(iot_local, scenario(tmp_path, "2026-11-23T19:05:00Z", 1, 40.0), flash)

    browser.open(dashboard + "/")
    shown = browser.wait_for_text(THING)
    for words in ("Devices", "online", "last report", "Firmware", "0.1.0", "Spotify login",
                  "days left", "Last motion", "2026-11-2", "Wi-Fi", "dBm"):
        assert words in shown, (words, shown)
    browser.screenshot(SHOTS / "overview.png")

    browser.open(dashboard + "/thing/" + THING)
    shown = browser.wait_for_text("sessions")
    for words in ("Settings", "Speaker", "Pause after (s)", "Save", "Sessions by hour of day",
                  "Sessions and play time by day, the last 14 days", "Raw shadow"):
        assert words in shown, (words, shown)
    assert browser.evaluate("document.querySelectorAll('#graphs svg').length") == 2
    day_graph = browser.evaluate("document.querySelectorAll('#graphs svg')[1].textContent")
    assert "sessions" in day_graph and "play time (s)" in day_graph  # short visits: seconds
    assert browser.evaluate("document.getElementById('f-timeout_s').value") == "1"

    # A change in the form: checked, sent, and reported back by the running firmware.
    browser.type_into("#f-timeout_s", "45")
    browser.submit("form")
    assert "Sent: timeout_s." in browser.text()
    assert "applied by the device" in browser.wait_for_text("applied by the device")
    reported = ShadowClient(THING, iot_local.endpoint_url).get()["state"]["reported"]
    assert reported["config"]["timeout_s"] == 45

    # A change made elsewhere (the CLI) shows up by itself: no reload (the marker stays).
    browser.evaluate("window.notReloaded = true")
    assert cli.main(["config", "set", "--thing", THING, "--endpoint-url",
                     iot_local.endpoint_url, "volume=35"]) == 0
    deadline = time.monotonic() + 30
    while browser.evaluate("document.getElementById('f-volume').value") != "35":
        assert time.monotonic() < deadline, "the page did not take the new volume"
        time.sleep(0.5)
    browser.wait_for_text("Sent: timeout_s.")  # still the same page
    status = "document.getElementById('status-volume').innerText"
    while "applied by the device" not in browser.evaluate(status):
        assert time.monotonic() < deadline, browser.evaluate(status)
        time.sleep(0.5)
    assert browser.evaluate("window.notReloaded") is True
    browser.screenshot(SHOTS / "device.png")

    assert device.stop() == EXIT_INTERRUPTED, "\n".join(device.console[-30:])
    assert not [line for line in device.console if "Traceback" in line], device.console[-30:]
    applied = [e["changed"] for e in device.events if e.get("ev") == "config_applied"]
    assert {"timeout_s": 45} in applied and {"volume": 35} in applied
