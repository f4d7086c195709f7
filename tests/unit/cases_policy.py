from core import config, policy, tzparse
from core.tz import days_from_civil

BERLIN = tzparse.parse("CET-1CEST,M3.5.0,M10.5.0/3")


def at(y, mo, d, h, mi):
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60


def conf(**changes):
    merged, _, refused = config.apply(config.DEFAULTS, changes)
    assert not refused
    return merged


def test_quiet_window_crossing_midnight_in_local_time():
    c = conf(quiet_start="22:00", quiet_end="07:00")
    cases = [  # UTC times in November: Berlin is UTC+1
        (at(2026, 11, 23, 20, 59), False), (at(2026, 11, 23, 21, 0), True),
        (at(2026, 11, 24, 3, 0), True), (at(2026, 11, 24, 5, 59), True),
        (at(2026, 11, 24, 6, 0), False),
    ]
    for utc, quiet in cases:
        assert policy.in_quiet_hours(c, BERLIN, utc) == quiet, utc


def test_quiet_window_same_day_and_degenerate():
    day = conf(quiet_start="13:00", quiet_end="15:00")
    assert policy.in_quiet_hours(day, BERLIN, at(2026, 7, 1, 11, 0))  # 13:00 CEST
    assert not policy.in_quiet_hours(day, BERLIN, at(2026, 7, 1, 13, 0))  # 15:00 CEST
    for c in (conf(quiet_start="13:00", quiet_end="13:00"), conf(quiet_start="13:00")):
        assert not policy.in_quiet_hours(c, BERLIN, at(2026, 7, 1, 11, 0))


def test_refusal_order_and_motion_gap():
    noon = at(2026, 7, 1, 10, 0)
    assert policy.start_refusal(conf(enabled=False), BERLIN, noon, None) == "disabled"
    quiet = conf(quiet_start="11:00", quiet_end="13:00")
    assert policy.start_refusal(quiet, BERLIN, noon, None) == "quiet_hours"
    gap = conf(motion_gap_s=60)
    assert policy.start_refusal(gap, BERLIN, noon, noon - 59) == "motion_gap"
    assert policy.start_refusal(gap, BERLIN, noon, noon - 60) is None
    assert policy.start_refusal(gap, BERLIN, noon, None) is None


def test_motion_gap_after_days_away_and_a_clock_set_back():
    gap = conf(motion_gap_s=3600)
    noon = at(2026, 7, 1, 10, 0)
    for days in (7, 11, 14, 200):  # a tick kept this long would compare the wrong way
        assert policy.start_refusal(gap, BERLIN, noon + days * 86400, noon) is None
    # The clock was 10 minutes fast at the last start and has been set right since:
    # the start seems to lie ahead, which says nothing about the gap.
    assert policy.start_refusal(gap, BERLIN, noon, noon + 600) is None
