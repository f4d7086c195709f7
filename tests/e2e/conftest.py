import pytest

from host_tools.sim import runner as sim
from host_tools.spotify.mock import MockSpotify

BASE_CONFIG = {"spotify_device": "Bathroom", "timeout_s": 2, "motion_gap_s": 0}


@pytest.fixture
def mock():
    with MockSpotify() as server:
        yield server


@pytest.fixture
def run_sim(mock, tmp_path):
    """Run a scenario against the mock; returns the SimResult."""

    def run(events, until, config=None, clock="2026-11-23T12:00:00Z", device=None,
            on_event=None, iot=None, settings=None, **target):
        scenario = sim.validate_scenario({
            "clock": clock,
            "config": dict(BASE_CONFIG, **(config or {})),
            "events": events,
            "until": until,
            "device": device or {"glitch_ms": 100},
        })
        flash = tmp_path / "flash"
        flash.mkdir(exist_ok=True)
        spotify = sim.SpotifyTarget(mock.url, mock.ca.cert_der, **target)

        # Tests look at what happens after boot: at a reboot, what the last boot did;
        # for the first, what came after its ready (the board's clock puts it: a request
        # made before this end reads the line is kept).
        def observe(event):
            if event["ev"] == "ready" and event["boot"] > 1:
                mock.clear_log()
            if on_event:
                on_event(event)

        result = sim.run(scenario, spotify, flash=flash, on_event=observe, iot=iot,
                         settings=settings)
        if result.ready_at is not None:
            mock.clear_log(before=result.ready_at)
        assert result.returncode == 0, "\n".join(result.console[-30:])
        assert not result.named("crash"), result.named("crash")
        return result

    return run


def api_calls(mock, method=None, path=None):
    return [
        r for r in mock.requests()
        if r["path"] != "/api/token"
        and (method is None or r["method"] == method)
        and (path is None or r["path"] == path)
    ]


def iot_target(iot, name, keys):
    """Thing `name`, issued by the local AWS IoT stand-in, as the simulator's IotTarget."""
    files = iot.issue_thing(name, keys)
    return sim.IotTarget(iot.mqtt_host, iot.mqtt_port, name, files.ca_der.read_bytes(),
                         files.cert_der.read_bytes(), files.key_der.read_bytes(),
                         iot.endpoint_url)
