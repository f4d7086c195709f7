"""IANA zone names -> POSIX TZ strings on the host, checked against zoneinfo hour by hour
under the device's own rules (core.tz)."""

import datetime
import zoneinfo

import pytest

from core import tz, tzparse
from host_tools.common import settings, timezones
from host_tools.common.errors import RefusedError

# North and south of the equator, with and without DST, odd offsets, a zone whose DST is
# its winter (Dublin), one that dropped DST (Sao Paulo), one with a 30-minute DST.
ZONES = [
    "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Europe/Dublin",
    "Australia/Sydney", "Pacific/Auckland", "America/Santiago", "Australia/Lord_Howe",
    "America/Sao_Paulo", "Africa/Johannesburg", "Asia/Kolkata", "Asia/Kathmandu",
    "Asia/Tokyo", "America/St_Johns", "UTC",
]
START = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp())


def assert_matches_zoneinfo(name: str, rule: str) -> None:
    zone, reference = tzparse.parse(rule), zoneinfo.ZoneInfo(name)
    for instant in range(START, START + 2 * 365 * 86400, 3600):
        moment = datetime.datetime.fromtimestamp(instant, reference)
        assert tz.offset_at(zone, instant) == moment.utcoffset().total_seconds(), (rule, moment)


@pytest.mark.parametrize("name", ZONES)
def test_the_posix_string_of_a_zone_gives_zoneinfos_local_time_every_hour(name):
    rule = timezones.posix_tz(name)
    assert_matches_zoneinfo(name, rule)
    assert timezones.days_that_differ(name, rule, START) == 0


def test_known_strings():
    assert timezones.posix_tz("Europe/Berlin") == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert timezones.posix_tz("Australia/Sydney") == "AEST-10AEDT,M10.1.0,M4.1.0/3"
    assert timezones.posix_tz("Asia/Kolkata") == "IST-5:30"


def test_the_tzdata_package_serves_when_the_system_has_no_zoneinfo(monkeypatch):
    monkeypatch.setattr(zoneinfo, "TZPATH", ())
    rule = timezones.posix_tz("Pacific/Auckland")
    assert rule == "NZST-12NZDT,M9.5.0,M4.1.0/3"
    assert_matches_zoneinfo("Pacific/Auckland", rule)


def test_a_zone_a_posix_rule_cannot_follow_is_flagged():
    # Morocco leaves +01 for Ramadan each year: listed in its file, not in its POSIX footer.
    rule = timezones.posix_tz("Africa/Casablanca")
    assert timezones.days_that_differ("Africa/Casablanca", rule, START) > 20
    _, notes = settings.check({"tz": "Africa/Casablanca"})
    assert "gives another local time than Africa/Casablanca on" in notes[0]


def test_names_are_found_whatever_their_case_and_typos_get_a_suggestion():
    assert timezones.posix_tz("europe/berlin") == "CET-1CEST,M3.5.0,M10.5.0/3"
    with pytest.raises(RefusedError, match=r"unknown time zone 'Europe/Berln' \(did you mean "
                                           r"Europe/Berlin\?\)"):
        timezones.posix_tz("Europe/Berln")
    for bad in ("../etc/passwd", "/etc/localtime", "Europe//Berlin"):
        with pytest.raises(RefusedError, match="unknown time zone"):
            timezones.posix_tz(bad)


def test_footer_of_tzif_files():
    assert timezones.footer(b"TZif2" + bytes(40) + b"\nEST5EDT,M3.2.0,M11.1.0\n") == \
        "EST5EDT,M3.2.0,M11.1.0"
    assert timezones.footer(b"TZif\0" + bytes(40)) is None  # version 1: no footer
    assert timezones.footer(b"TZif2" + bytes(40) + b"\n\n") is None  # no rule for the future
    assert timezones.footer(b"not a tzif file\n") is None


def test_settings_take_zone_names_posix_strings_and_short_hours():
    accepted, notes = settings.check({"tz": "Europe/Berlin", "quiet_start": "7:00",
                                      "quiet_end": "22:30"})
    assert accepted == {"tz": "CET-1CEST,M3.5.0,M10.5.0/3", "quiet_start": "07:00",
                        "quiet_end": "22:30"}
    assert notes == ["tz: Europe/Berlin -> CET-1CEST,M3.5.0,M10.5.0/3 (its POSIX TZ string, "
                     "which the device reads)"]
    accepted, notes = settings.check({"tz": "EST5EDT"})  # a zone name that is POSIX already
    assert accepted == {"tz": "EST5EDT"} and notes == []
    with pytest.raises(RefusedError, match="quiet_start: must be"):
        settings.check({"quiet_start": "7:0"})
