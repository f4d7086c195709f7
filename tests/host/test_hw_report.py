"""`spotty hw-report` against a fake board: the real MicroPython unix port (UnixPortLink)
whose flash holds the compiled firmware, the simulated board adapter and provisioned
files, with Spotify at the mock and AWS IoT at the local stand-in (mosquitto, mutual TLS).
The session window carries a short visit, fed to the sim board's PIR from sim.jsonl."""

import base64
import json
import re

import pytest
from needs import needs_mosquitto

from host_tools import cli
from host_tools.aws.iot_local import IotLocal
from host_tools.bench.board_lines import KEYS, format_lines
from host_tools.board import report
from host_tools.board import transport as board_module
from host_tools.board.transport import MpremoteTransport
from host_tools.board.unixport import UnixPortLink
from host_tools.common.pki import CertificateAuthority
from host_tools.sim import runner as sim
from host_tools.spotify.mock import MockSpotify

REFRESH_TOKEN = "hw-refresh-token-0000"
WIFI_PASSWORD = "sim-password"  # what sim.prepare_flash provisions
VISIT = [{"at": 0.5, "pir": 1}, {"at": 1.5, "pir": 0}]  # seconds after the firmware is ready
CONFIG = {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0}


@pytest.fixture
def links(tmp_path, monkeypatch):
    """`spotty` opens the fake board on any port; the links it opened, in order."""
    flash = tmp_path / "flash"
    opened = []

    def fake_open(port, baud=115200):
        link = UnixPortLink(flash)
        opened.append(link)
        return MpremoteTransport(link, root=str(flash))

    monkeypatch.setattr(board_module.MpremoteTransport, "open", staticmethod(fake_open))
    monkeypatch.setenv("SPOTTY_SIM", str(flash / sim.SIM_FILE))  # the sim board's PIR events
    return opened


@pytest.fixture
def flash(tmp_path, links):
    """The fake board's flash with the compiled firmware (and the sim board) on it."""
    flash = tmp_path / "flash"
    flash.mkdir()
    sim.install(flash)
    return flash


def provision(flash, spotify: sim.SpotifyTarget, iot: sim.IotTarget | None = None,
              until: float = 3600) -> None:
    """As provisioning would, plus the sim board's sim.jsonl (which ends its process at
    `until` seconds after ready)."""
    scenario = sim.validate_scenario({
        "clock": "2026-11-23T12:00:00Z", "config": CONFIG, "events": VISIT,
        "until": until, "device": {"glitch_ms": 100},
    })
    sim.prepare_flash(flash, scenario, spotify, iot)


def hw_report(capsys, tmp_path, window_s="8"):
    path = tmp_path / "report.json"
    code = cli.main(["hw-report", "--port", "/dev/ttyUSB0", "--session-s", window_s,
                     "--json", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out, captured.err, json.loads(path.read_text())


def gc_total_kb(mem_info: str) -> float:
    return int(re.search(r"GC: total: (\d+)", mem_info).group(1)) / 1024


def test_format_lines_labels_units_and_reasons():
    lines = format_lines({
        "heap_after_boot_kb": 41.25, "heap_free_kb": 70.0, "session_high_water_kb": 52.5,
        "largest_block_kb": 4.4, "tls_handshake_spotify_ms": 1043.0,
        "tls_handshake_aws_ms": None,
        "skipped": {"tls_handshake_aws_ms": "skipped: not provisioned for AWS IoT"},
    })
    assert lines == [
        "  heap after boot                  41.2 KB",
        "  free heap after boot             70.0 KB",
        "  session high-water               52.5 KB",
        "  largest block in the heap         4.4 KB",
        "  TLS handshake, Spotify API     1043.0 ms",
        "  TLS handshake, AWS IoT       skipped: not provisioned for AWS IoT",
    ]
    assert format_lines({})[0] == "  heap after boot              skipped"


@needs_mosquitto
def test_report_from_a_provisioned_board(flash, links, tmp_path, capsys):
    with MockSpotify(refresh_token=REFRESH_TOKEN) as mock, \
            IotLocal() as iot:
        files = iot.issue_thing("hw-bathroom", tmp_path / "keys")
        key_der = files.key_der.read_bytes()
        provision(
            flash,
            sim.SpotifyTarget(mock.url, mock.ca.cert_der, refresh_token=REFRESH_TOKEN),
            sim.IotTarget(iot.mqtt_host, iot.mqtt_port, "hw-bathroom",
                          files.ca_der.read_bytes(), files.cert_der.read_bytes(), key_der),
        )
        out, err, figures = hw_report(capsys, tmp_path)
        calls = [(r["method"], r["path"]) for r in mock.requests()]
        spotify_at = mock.url.removeprefix("https://")
        aws_at = "%s:%d" % (iot.mqtt_host, iot.mqtt_port)

    assert set(KEYS) <= set(figures) and figures["skipped"] == {}
    heap_kb = gc_total_kb(figures["mem_info"])
    assert 10 < figures["heap_after_boot_kb"] < heap_kb
    assert 0 < figures["heap_free_kb"] < heap_kb
    assert figures["session_high_water_kb"] >= figures["heap_after_boot_kb"]
    assert 0.5 < figures["largest_block_kb"] < figures["session_high_water_kb"]
    assert figures["tls_handshake_spotify_ms"] > 0 and figures["tls_handshake_aws_ms"] > 0
    assert figures["spotify_at"] == spotify_at and figures["aws_at"] == aws_at

    # The visit in the window was a whole session: played, then paused after the timeout.
    assert ("PUT", "/v1/me/player/play") in calls and ("PUT", "/v1/me/player/pause") in calls
    assert figures["session_events"]["motion"] == 1 and figures["session_events"]["play"] == 1
    assert figures["session_events"]["shadow_up"] >= 1 and figures["session_error"] is None

    lines = out.splitlines()
    assert all(line in lines for line in format_lines(figures))
    assert "GC: total:" in out and figures["mem_info"] in out
    assert "Session of 8 s, firmware events: motion 1, play 1, pause 1" in lines
    assert "walk past the sensor" in err
    assert links[0].serial.written.endswith(b"\x04")  # soft reset: main.py runs again
    # A real board is silent for most of the window: mpremote's default 10 s would end it.
    assert max(links[0].timeouts) >= 8 + report.SESSION_GRACE_S

    shown = (out + err + json.dumps(figures)).encode()
    for secret in (REFRESH_TOKEN, WIFI_PASSWORD):
        assert secret.encode() not in shown
    for encoded in (key_der, key_der.hex().encode(), base64.b64encode(key_der)[:40]):
        assert encoded not in shown


def test_an_unprovisioned_board_reports_skipped_lines(flash, tmp_path, capsys):
    provision(flash, sim.SpotifyTarget("https://127.0.0.1:9", b"\x30"))
    for name in ("secrets.json", "token.json"):
        (flash / name).unlink()
    out, _, figures = hw_report(capsys, tmp_path, window_s="1")

    why = "skipped: not provisioned (secrets.json missing)"
    assert figures["tls_handshake_spotify_ms"] is None and figures["tls_handshake_aws_ms"] is None
    assert figures["skipped"] == {"tls_handshake_spotify_ms": why, "tls_handshake_aws_ms": why}
    assert "  TLS handshake, Spotify API   " + why in out.splitlines()
    assert figures["heap_after_boot_kb"] > 10
    assert figures["session_high_water_kb"] >= figures["heap_after_boot_kb"]
    assert 0.5 < figures["largest_block_kb"] < figures["session_high_water_kb"]
    assert figures["session_error"] is None and "GC: total:" in figures["mem_info"]


def test_a_handshake_is_verified_against_the_boards_roots(flash, tmp_path, capsys):
    """Spotify only (no AWS IoT), and a CA root on the board that did not sign the mock."""
    with MockSpotify() as mock:
        stranger = CertificateAuthority.create("Not the mock's CA")
        provision(flash, sim.SpotifyTarget(mock.url, stranger.cert_der))
        out, _, figures = hw_report(capsys, tmp_path, window_s="1")

    assert figures["tls_handshake_spotify_ms"] is None
    assert figures["skipped"]["tls_handshake_spotify_ms"] == (
        "failed: ValueError: The certificate is not correctly signed by the trusted CA")
    assert figures["skipped"]["tls_handshake_aws_ms"] == (
        "skipped: not provisioned for AWS IoT (no endpoint or thing name)")
    assert figures["aws_at"] is None and "TLS to Spotify " in out


def test_a_board_gone_during_the_session_is_said_plainly(flash, tmp_path, capsys):
    """The sim board ends its process 1 s after ready, as a board that resets would leave."""
    with MockSpotify() as mock:
        provision(flash, sim.SpotifyTarget(mock.url, mock.ca.cert_der), until=1)
        code = cli.main(["hw-report", "--port", "/dev/ttyUSB0", "--session-s", "5",
                         "--json", str(tmp_path / "report.json")])
    err = capsys.readouterr().err
    assert code == 1 and "spotty: the session did not end (did the firmware reset" in err
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize("window", ["0", "-5", "3600"])
def test_a_window_outside_the_maintenance_watchdog_is_refused_before_opening(
        window, links, capsys):
    code = cli.main(["hw-report", "--port", "/dev/ttyUSB0", "--session-s", window])
    assert code == 3 and "the session window is 1 to 1200 seconds" in capsys.readouterr().err
    assert links == []
