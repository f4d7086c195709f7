# A zone (parsed from a POSIX TZ string by core.tzparse) -> local time at a UTC
# instant. The ESP32 has no time-zone database, so the DST rules are applied here.
# A zone is a tuple: (std_offset_s, dst_offset_s or None, start, end), offsets east
# of UTC (POSIX writes them west: "CET-1" is UTC+1), each rule a tuple
# (kind, a, b, c, seconds_after_local_midnight).
from micropython import const

_DAY = const(86400)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(year):
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    if month <= 2:
        year -= 1
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days):
    """(year, month, day) of a count of days since 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    year = yoe + era * 400
    return (year + 1 if month <= 2 else year), month, day


def _rule_day(rule, year):
    """Days since 1970 of the local date a rule names in `year`."""
    kind, a, week, weekday, _ = rule
    jan1 = days_from_civil(year, 1, 1)
    if kind == "J":  # 1..365, February 29 never counted
        return jan1 + a - 1 + (1 if _leap(year) and a >= 60 else 0)
    if kind == "N":
        return jan1 + a
    first = days_from_civil(year, a, 1)
    day = first + (weekday - (first + 4)) % 7  # 1970-01-01 was a Thursday (4)
    day += 7 * (week - 1)
    length = 29 if a == 2 and _leap(year) else _MONTH_DAYS[a - 1]
    while day >= first + length:  # week 5 means the last such weekday
        day -= 7
    return day


def offset_at(zone, utc):
    """Seconds to add to UTC for local time at the instant `utc` (seconds since 1970)."""
    std, dst, start, end = zone
    if dst is None:
        return std
    year = civil_from_days((utc + std) // _DAY)[0]
    # Start is given in standard local time, the end in daylight local time.
    begins = _rule_day(start, year) * _DAY + start[4] - std
    ends = _rule_day(end, year) * _DAY + end[4] - dst
    if begins < ends:
        in_dst = begins <= utc < ends
    else:  # southern hemisphere: DST spans the new year
        in_dst = not ends <= utc < begins
    return dst if in_dst else std


def local_minute_of_day(zone, utc):
    return (utc + offset_at(zone, utc)) % _DAY // 60
