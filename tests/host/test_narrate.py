"""The simulator's plain words: each event with its seconds and the device's local clock."""

from host_tools.sim.commands import _print_calls
from host_tools.sim.narrate import Narrator

CLOCK = 1795467580  # 2026-11-23 20:59:40 UTC


def test_each_line_has_the_seconds_and_the_local_clock():
    narrator = Narrator(CLOCK, "CET-1CEST,M3.5.0,M10.5.0/3")
    assert narrator.line({"ev": "motion", "t": 700}) == "   0.7s 21:59:40 CET    motion detected"
    assert narrator.line({"ev": "skip", "why": "quiet_hours", "t": 21200}) == \
        "  21.2s 22:00:01 CET    no music: it is quiet hours"
    assert narrator.line({"ev": "led", "mode": "idle", "t": 1}) is None  # not worth a line


def test_the_clock_follows_reboots_and_a_new_tz():
    narrator = Narrator(CLOCK, "UTC0")
    narrator.line({"ev": "reset", "uptime_ms": 30500, "t": 30500})
    narrator.line({"ev": "reboot", "why": "reset", "boot": 2})
    assert narrator.line({"ev": "motion", "t": 0}).startswith("   0.0s 21:00:10 UTC ")
    narrator.line({"ev": "config_applied", "changed": {"tz": "<-03>3"}, "t": 1000})
    assert narrator.line({"ev": "motion", "t": 2000}).startswith("   2.0s 18:00:12 -03 ")
    assert narrator.line({"ev": "boot", "mode": "normal"}) is None
    assert narrator.line({"ev": "crash", "error": "E"}).startswith("  boot ")


def test_calls_and_refreshes_are_counted_in_words(capsys):
    _print_calls([{"method": "POST", "path": "/api/token", "status": 200},
                  {"method": "GET", "path": "/v1/me/player", "status": 204}])
    assert capsys.readouterr().out.splitlines()[1] == \
        "Spotify saw 1 API call and 1 token refresh:"
    _print_calls([{"method": "GET", "path": "/v1/me/player", "status": 204}] * 2)
    assert "Spotify saw 2 API calls and 0 token refreshes:" in capsys.readouterr().out
