"""Months of uptime in seconds: the simulated board's ticks wrap as an ESP32's do (every
2**30 ms, from 3 s after it starts), `advance_s` moves its clocks days on at once, and
`rtc_offset_s` lets its wall clock drift until the firmware syncs it."""

import threading
import time

from needs import needs_mosquitto

from conftest import api_calls, iot_target
from host_tools.aws.iot_local import IotLocal
from host_tools.aws.shadow_client import ShadowClient

DAY = 86400
CLOCK = "2026-11-23T12:00:00Z"
CLOCK_UTC = 1795435200


def visit(at):
    return [{"at": at, "pir": 1}, {"at": at + 0.5, "pir": 0}]


def outcomes(result):
    return [e["ev"] if e["ev"] != "skip" else "skip:" + e["why"]
            for e in result.events if e["ev"] in ("play", "skip")]


def token_requests(mock):
    return [r for r in mock.requests() if r["path"] == "/api/token"]


def test_back_after_a_week_11_days_and_14_days_the_music_plays(mock, run_sim):
    # Each absence is longer than half the tick period (6.2 days): a tick kept from the
    # last start (motion_gap) would compare the wrong way round; 14 days spans a whole
    # wrap. The default motion gap (120 s) is on.
    events = visit(0.5)
    for n, days in enumerate((7, 11, 14)):
        at = 4.0 + 4.5 * n
        events += [{"at": at, "advance_s": days * DAY}] + visit(at + 1.0)
    result = run_sim(events, 18.5, config={"motion_gap_s": 120}, clock=CLOCK)
    assert outcomes(result) == ["play"] * 4
    assert len(result.named("pause")) == 4
    assert [e["advance_s"] for e in result.named("clock")] == [7 * DAY, 11 * DAY, 14 * DAY]
    assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 4
    # The access token had expired each time: a refresh after each jump, before its visit.
    refreshes = token_requests(mock)
    assert len(refreshes) == 3, refreshes
    # The sessions are counted on the clock that moved: about 1-3 s each, not days.
    assert all(1 <= e["duration_s"] <= 3 for e in result.named("session_end"))
    # The clock sync (with the 6-hourly heartbeat) came due after each jump.
    assert len(result.named("clock_sync")) == 4


def test_a_scenario_chooses_the_starting_tick(mock, run_sim, tmp_path):
    from host_tools.sim import runner as sim

    for ticks in (0, (1 << 30) - 1):
        scenario = sim.validate_scenario({
            "clock": CLOCK, "ticks_ms": ticks, "until": 4.0, "events": visit(0.5),
            "config": {"spotify_device": "Bathroom", "timeout_s": 1},
            "device": {"glitch_ms": 100}})
        result = sim.run(scenario, sim.SpotifyTarget(mock.url, mock.ca.cert_der),
                         flash=tmp_path / ("flash-%d" % ticks))
        assert result.returncode == 0, "\n".join(result.console[-30:])
        assert [e["ev"] for e in result.events if e["ev"] in ("play", "pause")] == [
            "play", "pause"]


def test_clock_drift_is_corrected_at_the_next_sync_before_a_visit_is_judged(mock, run_sim):
    # Quiet until 07:00. At 06:50 the board's clock runs 10 minutes fast and says 07:00: a
    # visit before the next sync is judged on it (music). A day later the clock is synced
    # (with the heartbeat, every 6 hours) and the visit after it is quiet, as 06:50 is.
    config = {"quiet_start": "22:00", "quiet_end": "07:00", "timeout_s": 1}
    events = [{"at": 0.5, "rtc_offset_s": 600}] + visit(1.0) + [
        {"at": 4.0, "advance_s": DAY}] + visit(8.0)
    result = run_sim(events, 10.0, config=config, clock="2026-11-23T06:50:00Z")
    assert outcomes(result) == ["play", "skip:quiet_hours"]
    boot_sync, daily = result.named("clock_sync")
    assert "t" not in boot_sync  # before ready: no visit is judged before the first sync
    assert daily["step_s"] in (-600, -599), daily  # the 10 minutes, to the second
    [skip] = result.named("skip")
    assert result.named("clock")[1]["t"] < daily["t"] < skip["t"]  # the jump, the sync


@needs_mosquitto
def test_a_week_away_with_the_shadow_link(mock, run_sim, tmp_path):
    """The heartbeat comes due, the token's days left shrink, the statistics' day rolls
    over, and the status says when the clock was last synced."""
    with IotLocal() as iot:
        name = "months-1"
        target = iot_target(iot, name, tmp_path / "keys")
        shadow = ShadowClient(name, iot.endpoint_url)
        seen = {}

        def watch_status():
            # Between the jump and the next visit only the heartbeat reports status.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and "status" not in seen:
                document = shadow.get() or {}
                status = document.get("state", {}).get("reported", {}).get("status", {})
                if status.get("token_days_left") == 175:
                    seen["status"] = status
                time.sleep(0.2)

        def on_event(event):
            if event["ev"] == "clock":
                threading.Thread(target=watch_status, daemon=True).start()
            if event["ev"] == "motion" and event["count"] == 2:
                seen["visit"] = "status" in seen

        events = visit(0.5) + [{"at": 4.0, "advance_s": 7 * DAY}] + visit(10.0)
        result = run_sim(events, 15.0, iot=target, clock=CLOCK, on_event=on_event,
                         config={"motion_gap_s": 120})
        assert outcomes(result) == ["play", "play"]
        assert seen.get("visit") is True, seen  # the heartbeat's report, before the visit
        status = seen["status"]
        assert status["uptime_s"] >= 7 * DAY
        assert status["clock_synced"] >= CLOCK_UTC + 7 * DAY  # synced after the jump
        reported = shadow.get()["state"]["reported"]
        assert reported["status"]["token_days_left"] == 175
        by_day = reported["stats"]["by_day"]  # [day, sessions, play_s]
        assert [day[:2] for day in by_day] == [["2026-11-23", 1], ["2026-11-30", 1]]
        assert all(day[2] >= 1 for day in by_day)
        assert reported["stats"]["sessions"] == 2


def test_motion_during_boot_is_judged_only_after_the_first_sync(mock, run_sim):
    # Someone walks in while the board boots, in quiet hours: the visit waits for the clock.
    config = {"quiet_start": "22:00", "quiet_end": "07:00", "timeout_s": 1}
    result = run_sim([{"at": -0.5, "pir": 1}, {"at": 0.5, "pir": 0}], 3.0, config=config,
                     clock="2026-11-23T23:00:00Z")
    kinds = [e["ev"] for e in result.events]
    assert outcomes(result) == ["skip:quiet_hours"]
    assert "motion" in kinds and kinds.index("clock_sync") < kinds.index("skip")
