"""Numbers and times as the dashboard says them. Pure."""

import time

from ..common import devicepath


def span(seconds: float) -> str:
    """A duration in the largest unit that fits: "45 s", "12 min", "3 h", "2 days"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%d h" % (seconds // 3600)
    return "%d days" % (seconds // 86400)


def ago(seconds: float) -> str:
    return "just now" if seconds < 60 else span(seconds) + " ago"


def zone(posix_tz):
    """The device's zone as core.tz reads it; None when unset or unreadable (then UTC)."""
    if not isinstance(posix_tz, str):
        return None
    devicepath.install()
    from core import tzparse

    try:
        return tzparse.parse(posix_tz)
    except ValueError:
        return None


def local_time(utc: int, parsed_zone) -> str:
    """"2026-11-23 21:59 (UTC+1)": the device's local time, with its offset."""
    devicepath.install()
    from core import tz

    offset = tz.offset_at(parsed_zone, utc) if parsed_zone else 0
    shown = time.strftime("%Y-%m-%d %H:%M", time.gmtime(utc + offset))
    return "%s (%s)" % (shown, utc_offset(offset))


def utc_offset(offset_s: int) -> str:
    if offset_s == 0:
        return "UTC"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    sign = "+" if offset_s > 0 else "-"
    return "UTC%s%d" % (sign, hours) + (":%02d" % minutes if minutes else "")


def date(utc: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(utc))


def rssi(dbm) -> str:
    if not isinstance(dbm, int):
        return "-"
    quality = "good" if dbm >= -60 else "fair" if dbm >= -70 else "weak"
    return "%d dBm (%s)" % (dbm, quality)


def size(free_bytes) -> str:
    if not isinstance(free_bytes, int):
        return "-"
    if free_bytes >= 1024 * 1024:
        return "%.1f MB free" % (free_bytes / 1024 / 1024)
    return "%d KB free" % (free_bytes // 1024)


def duration(seconds) -> str:
    """Play time: "1 h 30 min", "12 min", "40 s"."""
    hours, rest = divmod(int(seconds or 0), 3600)
    if hours:
        return "%d h %02d min" % (hours, rest // 60)
    return "%d min" % (rest // 60) if rest >= 60 else "%d s" % rest


def quoted(text: str) -> str:
    return "\u201c%s\u201d" % text


def count(number: int, thing: str) -> str:
    return "%d %s%s" % (number, thing, "" if number == 1 else "s")
