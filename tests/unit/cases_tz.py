from core import tz
from core.tz import civil_from_days, days_from_civil, local_minute_of_day, offset_at
from core.tzparse import parse

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"
SYDNEY = "AEST-10AEDT,M10.1.0,M4.1.0/3"


def utc(y, mo, d, h=0, mi=0, s=0):
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


def test_civil_round_trip_and_known_dates():
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11017
    assert civil_from_days(days_from_civil(2024, 2, 29)) == (2024, 2, 29)
    for days in range(-800, 40000, 37):
        assert days_from_civil(*civil_from_days(days)) == days


def test_fixed_offsets():
    cases = [("UTC0", 0), ("CET-1", 3600), ("EST5", -18000), ("IST-5:30", 19800),
             ("<+0545>-5:45", 20700), ("<-03>3", -10800)]
    for text, offset in cases:
        assert offset_at(parse(text), utc(2026, 6, 1)) == offset, text


def test_transitions_to_the_second():
    cases = [
        # zone, instant of change (UTC), offset before, offset after
        (BERLIN, utc(2026, 3, 29, 1), 3600, 7200),
        (BERLIN, utc(2026, 10, 25, 1), 7200, 3600),
        (NEW_YORK, utc(2026, 3, 8, 7), -18000, -14400),
        (NEW_YORK, utc(2026, 11, 1, 6), -14400, -18000),
        (SYDNEY, utc(2026, 4, 4, 16), 39600, 36000),
        (SYDNEY, utc(2026, 10, 3, 16), 36000, 39600),
    ]
    for text, change, before, after in cases:
        zone = parse(text)
        assert offset_at(zone, change - 1) == before, (text, change)
        assert offset_at(zone, change) == after, (text, change)


def test_southern_zone_across_new_year():
    zone = parse(SYDNEY)
    assert offset_at(zone, utc(2026, 1, 1)) == 39600
    assert offset_at(zone, utc(2026, 12, 31, 23)) == 39600
    assert offset_at(zone, utc(2026, 7, 1)) == 36000


def test_dst_name_without_rules_uses_us_default_and_one_hour():
    zone = parse("EST5EDT")
    assert offset_at(zone, utc(2026, 7, 1)) == -14400
    assert offset_at(zone, utc(2026, 1, 1)) == -18000


def test_julian_and_zero_based_day_rules():
    # J60 is March 1 every year; 59 (zero-based) is Feb 29 in a leap year.
    assert tz._rule_day(("J", 60, 0, 0, 0), 2024) == days_from_civil(2024, 3, 1)
    assert tz._rule_day(("J", 60, 0, 0, 0), 2026) == days_from_civil(2026, 3, 1)
    assert tz._rule_day(("N", 59, 0, 0, 0), 2024) == days_from_civil(2024, 2, 29)
    zone = parse("AAA0BBB,J60/0,J300/0")
    assert offset_at(zone, utc(2026, 3, 1) - 1) == 0
    assert offset_at(zone, utc(2026, 3, 1)) == 3600


def test_last_weekday_of_a_month():
    # M10.5.0: the last Sunday of October.
    assert tz._rule_day(("M", 10, 5, 0, 0), 2026) == days_from_civil(2026, 10, 25)
    assert tz._rule_day(("M", 2, 5, 0, 0), 2024) == days_from_civil(2024, 2, 25)
    assert tz._rule_day(("M", 3, 2, 0, 0), 2026) == days_from_civil(2026, 3, 8)


def test_local_minute_of_day():
    zone = parse(BERLIN)
    assert local_minute_of_day(zone, utc(2026, 11, 23, 20, 59, 59)) == 21 * 60 + 59
    assert local_minute_of_day(zone, utc(2026, 7, 1, 22, 30)) == 30


def test_malformed_strings_are_refused():
    for text in ("", "C", "CET", "CET-25", "CET-1CEST,M13.1.0,M10.5.0", "CET-1CEST,M3.5",
                 "CET-1CEST,M3.5.0", "CET-1CEST,M3.5.0,M10.5.0/x", "<CET-1", "CET-1 junk",
                 None, 5):
        try:
            parse(text)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (text,))
