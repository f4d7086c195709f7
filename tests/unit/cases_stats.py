from core import tzparse
from core.stats import DAYS, Stats
from core.tz import days_from_civil

BERLIN = tzparse.parse("CET-1CEST,M3.5.0,M10.5.0/3")


def at(y, mo, d, h, mi=0):
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60


def test_sessions_count_in_local_hour_and_day():
    s = Stats()
    s.motion(at(2026, 11, 23, 23, 30))
    s.session(BERLIN, at(2026, 11, 23, 23, 30), 95)  # 00:30 on the 24th in Berlin
    d = s.as_dict()
    assert d["sessions"] == 1 and d["play_s"] == 95 and d["motions"] == 1
    assert d["by_hour"][0] == 1 and sum(d["by_hour"]) == 1
    assert d["by_day"] == [["2026-11-24", 1, 95]]
    assert d["last_motion"] == at(2026, 11, 23, 23, 30)


def test_days_are_bounded_and_survive_a_round_trip():
    s = Stats()
    for day in range(1, 21):
        s.session(BERLIN, at(2026, 7, day, 10), 60)
    d = s.as_dict()
    assert len(d["by_day"]) == DAYS and d["by_day"][0] == ["2026-07-07", 1, 60]
    again = Stats(d).as_dict()
    assert again == d


def test_garbage_saved_state_becomes_zeros():
    s = Stats({"sessions": -4, "play_s": "x", "by_hour": [1, 2],
               "by_day": [["a"], 5, ["2026-11-01", 1, 2, 3]], "motions": True,
               "last_motion": "yesterday"})
    d = s.as_dict()
    assert d["sessions"] == 0 and d["play_s"] == 0 and d["motions"] == 0
    assert d["by_hour"] == [0] * 24 and d["by_day"] == [] and d["last_motion"] is None
    assert Stats("not a dict").as_dict() == Stats().as_dict()


def test_play_time_adds_up_per_local_day():
    s = Stats()
    s.session(BERLIN, at(2026, 11, 23, 7), 300)
    s.session(BERLIN, at(2026, 11, 23, 19), 1200)
    s.session(BERLIN, at(2026, 11, 23, 23, 30), 60)  # 00:30 on the 24th in Berlin
    s.session(BERLIN, at(2026, 11, 25, 8), -5)  # a clock step back: no negative time
    d = s.as_dict()
    assert d["by_day"] == [["2026-11-23", 2, 1500], ["2026-11-24", 1, 60],
                           ["2026-11-25", 1, 0]]
    assert d["play_s"] == sum(day[2] for day in d["by_day"])


def test_a_day_before_the_kept_ones_keeps_the_days_in_order():
    s = Stats()
    for day in range(10, 24):
        s.session(BERLIN, at(2026, 11, day, 10), 60)
    s.session(BERLIN, at(2026, 11, 9, 10), 60)  # a clock set back: older than all 14
    s.session(BERLIN, at(2026, 11, 15, 10), 30)  # a day kept: counted in it
    d = s.as_dict()
    assert [day[0] for day in d["by_day"]] == ["2026-11-%02d" % n for n in range(10, 24)]
    assert d["by_day"][5] == ["2026-11-15", 2, 90] and d["sessions"] == 16


def test_days_saved_by_older_firmware_have_no_play_time_yet():
    s = Stats({"sessions": 3, "by_day": [["2026-11-22", 2], ["2026-11-21", 1]]})
    assert s.as_dict()["by_day"] == [["2026-11-21", 1, 0], ["2026-11-22", 2, 0]]
    s.session(BERLIN, at(2026, 11, 22, 10), 120)
    assert s.as_dict()["by_day"][-1] == ["2026-11-22", 3, 120]


def test_a_report_is_a_snapshot_that_a_later_session_does_not_change():
    s = Stats()
    s.session(BERLIN, at(2026, 11, 23, 12), 60)
    report = s.as_dict()
    s.session(BERLIN, at(2026, 11, 23, 12, 5), 30)
    assert report["by_day"][-1][1:] == [1, 60] and report["sessions"] == 1
