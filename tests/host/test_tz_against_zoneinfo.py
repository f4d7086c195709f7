"""The device's POSIX TZ rules against the host's time-zone database, hour by hour."""

import datetime
from zoneinfo import ZoneInfo

import pytest

from core import tz, tzparse

ZONES = {
    "Europe/Berlin": "CET-1CEST,M3.5.0,M10.5.0/3",
    "America/New_York": "EST5EDT,M3.2.0,M11.1.0",
    "Australia/Sydney": "AEST-10AEDT,M10.1.0,M4.1.0/3",
    "America/Santiago": "<-04>4<-03>,M9.1.6/24,M4.1.6/24",
    "Asia/Kolkata": "IST-5:30",
}


@pytest.mark.parametrize("name", sorted(ZONES))
def test_offsets_match_tzdata_every_hour_of_2026_and_2027(name):
    zone, reference = tzparse.parse(ZONES[name]), ZoneInfo(name)
    start = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    for instant in range(start, start + 2 * 365 * 86400, 3600):
        moment = datetime.datetime.fromtimestamp(instant, reference)
        assert tz.offset_at(zone, instant) == moment.utcoffset().total_seconds(), moment
