"""Quiet hours in local time, across midnight and across a daylight-saving change."""

from conftest import api_calls

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"


def visits_at(*starts):
    events = []
    for at in starts:
        events += [{"at": at, "pir": 1}, {"at": at + 0.4, "pir": 0}]
    return events


def outcomes(result):
    return [e["ev"] if e["ev"] != "skip" else "skip:" + e["why"]
            for e in result.events if e["ev"] in ("play", "skip")]


def test_quiet_hours_window_crossing_midnight(mock, run_sim):
    config = {"tz": BERLIN, "quiet_start": "22:00", "quiet_end": "07:00", "timeout_s": 1}
    # 21:59:57 local in November (UTC+1): a visit at 22:00:00 is the first quiet one.
    evening = run_sim(visits_at(0.5, 4.5), 6.0, config=config, clock="2026-11-23T20:59:57Z")
    assert outcomes(evening) == ["play", "skip:quiet_hours"]
    mock.clear_log()
    # 06:59:57 local: quiet first, music from 07:00.
    morning = run_sim(visits_at(0.5, 4.5), 6.0, config=config, clock="2026-11-24T05:59:57Z")
    assert outcomes(morning) == ["skip:quiet_hours", "play"]
    assert len(api_calls(mock, "PUT", "/v1/me/player/play")) == 1


def test_quiet_hours_follow_the_spring_forward(mock, run_sim):
    # 2026-03-29 01:00:00Z: Berlin jumps from 02:00 CET to 03:00 CEST. Quiet from 03:00:
    # a fixed UTC+1 clock would still say 02:00 and play.
    config = {"tz": BERLIN, "quiet_start": "03:00", "quiet_end": "06:00", "timeout_s": 1}
    result = run_sim(visits_at(0.5, 4.5), 6.0, config=config, clock="2026-03-29T00:59:57Z")
    assert outcomes(result) == ["play", "skip:quiet_hours"]


def test_quiet_hours_follow_the_fall_back(mock, run_sim):
    # 2026-10-25 01:00:00Z: Berlin goes from 03:00 CEST back to 02:00 CET. Quiet until 02:30:
    # 00:59:57Z is 02:59:57 (music), 01:00:02Z is 02:00:02 again (quiet).
    config = {"tz": BERLIN, "quiet_start": "01:00", "quiet_end": "02:30", "timeout_s": 1}
    result = run_sim(visits_at(0.5, 4.5), 6.0, config=config, clock="2026-10-25T00:59:57Z")
    assert outcomes(result) == ["play", "skip:quiet_hours"]
