"""`spotty sim --iot` against a `spotty iot-local` that keeps running: the README's
"stand-in for your own experiments", with `config`, `stats --plot` on what the sim made."""

import json

import pytest
from iot_process import IotLocalProcess
from needs import needs_mosquitto

from host_tools import cli
from host_tools.aws.iot_local import ENDPOINTS_FILE
from host_tools.aws.shadow_client import ShadowClient

pytestmark = needs_mosquitto
THING = "sim-kept"


@pytest.fixture(scope="module")
def iot_local(tmp_path_factory):
    running = IotLocalProcess(tmp_path_factory.mktemp("iot-local"))
    yield running
    running.stop()
    assert not (running.state_dir / ENDPOINTS_FILE).exists()  # gone with the service


def visit(tmp_path, clock: str) -> str:
    """A scenario with one short session at `clock`."""
    path = tmp_path / ("visit-%s.json" % clock[:10])
    path.write_text(json.dumps({
        "clock": clock,
        "config": {"spotify_device": "Bathroom", "timeout_s": 1, "motion_gap_s": 0,
                   "tz": "CET-1CEST,M3.5.0,M10.5.0/3"},
        "events": [{"at": 0.5, "pir": 1}, {"at": 1.0, "pir": 0}],
        "until": 4.0}))
    return str(path)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_sessions_on_two_days_stay_in_the_running_stand_in(capsys, iot_local, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    flash = "board"  # relative, as in the README
    for clock in ("2026-11-21T08:00:00Z", "2026-11-23T18:30:00Z"):
        code, out, err = run(capsys, "sim", visit(tmp_path, clock), "--thing", THING,
                             "--endpoint-url", iot_local.endpoint_url,
                             "--state-dir", iot_local.state_dir, "--flash", flash)
        assert code == 0, err
        assert "The shadow of %s after the run" % THING in out
    stats = ShadowClient(THING, iot_local.endpoint_url).get()["state"]["reported"]["stats"]
    assert stats["sessions"] == 2  # the kept flash carried the first run's statistics over
    assert [day[:2] for day in stats["by_day"]] == [["2026-11-21", 1], ["2026-11-23", 1]]
    assert all(day[2] >= 1 for day in stats["by_day"])  # each visit played a second or more
    assert sum(day[2] for day in stats["by_day"]) == stats["play_s"]
    plot = tmp_path / "use.png"
    code, out, _ = run(capsys, "stats", "--thing", THING, "--endpoint-url",
                       iot_local.endpoint_url, "--plot", plot)
    assert code == 0 and "sessions      2" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_iot_local_in_that_directory_is_said(capsys, tmp_path):
    code, _, err = run(capsys, "sim", visit(tmp_path, "2026-11-21T08:00:00Z"),
                       "--state-dir", tmp_path / "nothing")
    assert code == 1
    assert "no running iot-local found in" in err and "spotty iot-local --state-dir" in err


def test_an_endpoint_of_another_iot_local_is_refused(capsys, iot_local, tmp_path):
    code, _, err = run(capsys, "sim", visit(tmp_path, "2026-11-21T08:00:00Z"),
                       "--endpoint-url", "http://127.0.0.1:1", "--state-dir",
                       iot_local.state_dir)
    assert code == 2 and "serves %s, not http://127.0.0.1:1" % iot_local.endpoint_url in err


def test_a_thing_named_with_128_characters_runs_against_the_running_stand_in(
        capsys, iot_local, tmp_path):
    """Its name does not fit a certificate's CN: the running stand-in attaches the
    certificate to the thing (AttachThingPrincipal), and --json ends with the shadow."""
    thing = ("kitchen:" + "a-long_name-" * 11)[:128]
    code, out, err = run(capsys, "sim", visit(tmp_path, "2026-11-22T08:00:00Z"), "--thing",
                         thing, "--endpoint-url", iot_local.endpoint_url, "--state-dir",
                         iot_local.state_dir, "--json")
    assert code == 0, err
    last = json.loads(out.splitlines()[-1])
    assert last["ev"] == "shadow"
    assert last["document"] == ShadowClient(thing, iot_local.endpoint_url).get()
    assert last["document"]["state"]["reported"]["stats"]["sessions"] == 1
    assert not [line for line in out.splitlines() if '"shadow_link"' in line]
