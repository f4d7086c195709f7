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
        self.by_day = {}
        days = saved.get("by_day")
        for pair in days if isinstance(days, list) else ():
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str):
                self.by_day[pair[0]] = _count(pair[1])
        self._trim()

    def motion(self, utc):
        self.motions += 1
        self.last_motion = utc

    def session(self, zone, started_utc, duration_s):
        """A session that played for duration_s, counted in the local hour and day it began."""
        local = started_utc + tz.offset_at(zone, started_utc)
        self.sessions += 1
        self.play_s += max(0, duration_s)
        self.by_hour[local % 86400 // 3600] += 1
        day = _local_day_text(local)
        self.by_day[day] = self.by_day.get(day, 0) + 1
        self._trim()

    def _trim(self):
        while len(self.by_day) > DAYS:
            del self.by_day[min(self.by_day)]

    def as_dict(self):
        return {
            "sessions": self.sessions,
            "play_s": self.play_s,
            "motions": self.motions,
            "last_motion": self.last_motion,
            "by_hour": list(self.by_hour),
            "by_day": [[day, self.by_day[day]] for day in sorted(self.by_day)],
        }


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
