"""IANA time zone names (Europe/Berlin) -> the POSIX TZ string the device needs.

The ESP32 has no time zone database, so the host converts: the string is the footer of
the zone's TZif file (RFC 8536: the rule for times after the file's last transition),
found where Python's zoneinfo looks, the system's zoneinfo directories first and then
the `tzdata` package. The result is checked against zoneinfo for the next two years.
"""

import datetime
import difflib
import importlib.resources
import re
import zoneinfo
from pathlib import Path

from .errors import RefusedError

CHECK_DAYS = 2 * 365
CHECK_STEP_S = 6 * 3600
_POSIX_NAME = re.compile(r"<([^>]*)>|([A-Za-z]{3,})")


def _search_path() -> list:
    """Where TZif files live, in zoneinfo's order: its TZPATH, then the tzdata package."""
    places: list = [Path(d) for d in zoneinfo.TZPATH]
    try:
        places.append(importlib.resources.files("tzdata").joinpath("zoneinfo"))
    except ModuleNotFoundError:
        pass
    return places


def _tzif(name: str) -> bytes | None:
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") or "\\" in p for p in parts):
        return None
    for place in _search_path():
        candidate = place.joinpath(*parts)
        if candidate.is_file():
            return candidate.read_bytes()
    return None


def footer(data: bytes) -> str | None:
    """The POSIX TZ string at the end of a TZif file (version 2 or later), or None."""
    if data[:4] != b"TZif" or data[4:5] not in (b"2", b"3", b"4") or not data.endswith(b"\n"):
        return None
    text = data[:-1].rsplit(b"\n", 1)[-1]
    return text.decode("ascii") if text else None


def known_zones() -> set[str]:
    return zoneinfo.available_timezones()


def looks_like_zone_name(text: str) -> bool:
    return "/" in text or text in known_zones()


def posix_tz(name: str) -> str:
    """The POSIX TZ string of IANA zone `name`; RefusedError saying why not."""
    data = _tzif(name)
    if data is None:
        by_case = {z.lower(): z for z in known_zones()}
        if name.lower() in by_case:
            return posix_tz(by_case[name.lower()])
        close = difflib.get_close_matches(name, known_zones(), n=1)
        hint = " (did you mean %s?)" % close[0] if close else ""
        raise RefusedError("unknown time zone %r%s" % (name, hint))
    rule = footer(data)
    if rule is None:
        raise RefusedError("the time zone file of %s holds no POSIX rule: give tz as a POSIX "
                           "TZ string, e.g. CET-1CEST,M3.5.0,M10.5.0/3" % name)
    return rule


def canonical_name(name: str) -> str:
    """The zone's name as the database spells it (europe/berlin -> Europe/Berlin)."""
    if _tzif(name) is not None:
        return name
    return {z.lower(): z for z in known_zones()}.get(name.lower(), name)


def days_that_differ(name: str, rule: str, start_utc: int) -> int:
    """On how many days of the next two years the POSIX rule gives another local time than
    the zone does (Morocco's Ramadan changes, for one, are not in any POSIX rule)."""
    from . import devicepath

    devicepath.install()
    from core import tz, tzparse

    zone, reference = tzparse.parse(rule), zoneinfo.ZoneInfo(canonical_name(name))
    days = set()
    for utc in range(start_utc, start_utc + CHECK_DAYS * 86400, CHECK_STEP_S):
        moment = datetime.datetime.fromtimestamp(utc, reference)
        if tz.offset_at(zone, utc) != moment.utcoffset().total_seconds():
            days.add(utc // 86400)
    return len(days)


# -- POSIX TZ strings on the host: names and local clocks ---------------------------------


def posix_names(posix: str) -> list[str]:
    """CET-1CEST,M3.5.0,M10.5.0/3 -> [CET, CEST]; <-04>4<-03>,... -> [-04, -03]."""
    return [a or b for a, b in _POSIX_NAME.findall(posix.split(",")[0])] or [posix]


def local_clock(utc: int, posix: str) -> tuple[datetime.datetime, str]:
    """(the local wall-clock time, naive, and the zone's name then) under a POSIX TZ
    string, computed as the device computes it (core.tz); UTC if the string is malformed."""
    from . import devicepath

    devicepath.install()
    from core import tz, tzparse

    try:
        zone = tzparse.parse(posix)
    except ValueError:
        zone, posix = tzparse.parse("UTC0"), "UTC0"
    offset = tz.offset_at(zone, utc)
    names = posix_names(posix)
    name = names[1] if offset != zone[0] and len(names) > 1 else names[0]
    moment = datetime.datetime.fromtimestamp(utc + offset, datetime.timezone.utc)
    return moment.replace(tzinfo=None), name
