# Use statistics for the shadow's reported.stats: cumulative totals, so a
# report that is late (link down) or lost loses nothing — the next one carries
# the same totals. Bounded: 24 hour slots and the last DAYS days, local time.
# Days go out as a list of [day, count] pairs: the shadow replaces arrays whole
# but merges objects, so a dict would keep days we dropped forever.
from micropython import const

from core import tz

DAYS = const(14)


def _local_day_text(local):
    year, month, day = tz.civil_from_days(local // 86400)
    return "%04d-%02d-%02d" % (year, month, day)


class Stats:
    def __init__(self, saved=None):
        saved = saved if isinstance(saved, dict) else {}
        self.sessions = _count(saved.get("sessions"))
        self.play_s = _count(saved.get("play_s"))
        self.motions = _count(saved.get("motions"))
        self.last_motion = saved.get("last_motion") if _count(saved.get("last_motion")) else None
        hours = saved.get("by_hour")
        ok = isinstance(hours, list) and len(hours) == 24
        self.by_hour = [_count(h) for h in hours] if ok else [0] * 24
        self.by_day = []
        days = saved.get("by_day")
        for day in days if isinstance(days, list) else ():
            # [day, sessions] from firmware before play time by day was kept
            if isinstance(day, list) and 2 <= len(day) <= 3 and isinstance(day[0], str):
                self.by_day.append([day[0], _count(day[1]), _count(day[2]) if len(day) > 2 else 0])
        self.by_day.sort()
        del self.by_day[:-DAYS]

    def motion(self, utc):
        self.motions += 1
        self.last_motion = utc

    def session(self, zone, started_utc, duration_s):
        """A session that played for duration_s, counted in the local hour and day it began."""
        local = started_utc + tz.offset_at(zone, started_utc)
        self.sessions += 1
        self.play_s += max(0, duration_s)
        self.by_hour[local % 86400 // 3600] += 1
        text = _local_day_text(local)
        for day in self.by_day:
            if day[0] == text:
                break
        else:
            day = [text, 0, 0]
            self.by_day.append(day)
            self.by_day.sort()  # a clock set back may bring an earlier day
            del self.by_day[:-DAYS]
        day[1] += 1
        day[2] += max(0, duration_s)

    def as_dict(self):
        return {
            "sessions": self.sessions,
            "play_s": self.play_s,
            "motions": self.motions,
            "last_motion": self.last_motion,
            "by_hour": list(self.by_hour),
            # A copy, as by_hour: a report is rendered a piece at a time
            # (mqtt_wire.publish_json), and a session may end in between.
            "by_day": [list(day) for day in self.by_day],
        }


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
