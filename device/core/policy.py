# May a session start now? The master switch, local quiet hours and the least
# gap between two playback-start attempts.
from core import tz
from core.ticks import ticks_diff


def _minutes(hhmm):
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def in_quiet_hours(config, zone, utc):
    """Quiet when both ends are set; the window may cross midnight; start == end is none."""
    start, end = config["quiet_start"], config["quiet_end"]
    if start is None or end is None:
        return False
    begin, finish = _minutes(start), _minutes(end)
    minute = tz.local_minute_of_day(zone, utc)
    if begin <= finish:
        return begin <= minute < finish
    return minute >= begin or minute < finish


def start_refusal(config, zone, utc, now_ms, last_start_ms):
    """None when playback may start; else the reason it may not."""
    if not config["enabled"]:
        return "disabled"
    if in_quiet_hours(config, zone, utc):
        return "quiet_hours"
    gap_ms = config["motion_gap_s"] * 1000
    if last_start_ms is not None and ticks_diff(now_ms, last_start_ms) < gap_ms:
        return "motion_gap"
    return None
