# May a session start now? The master switch, local quiet hours and the least
# gap between two playback-start attempts.
from core import tz


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


def start_refusal(config, zone, utc, last_start):
    """None when playback may start; else the reason it may not. last_start: UTC
    seconds of the last start attempt (a tick would be ancient after days away);
    one later than utc (the clock was set back since) imposes no gap."""
    if not config["enabled"]:
        return "disabled"
    if in_quiet_hours(config, zone, utc):
        return "quiet_hours"
    if last_start is not None and 0 <= utc - last_start < config["motion_gap_s"]:
        return "motion_gap"
    return None
