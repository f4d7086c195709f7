"""`spotty stats`: how a device has been used, as a table and as a plot.

The device reports cumulative totals, sessions by local hour of day, and sessions and play
time on the last 14 local days that had any (core/stats.py). Both views show every day in between,
empty ones too, and name the device's time zone.
"""

import datetime
import math
from pathlib import Path

from ..common import timezones
from ..common.cmdline import plural
from ..common.errors import SpottyError

HOUR_COLOUR = "#1db954"
DAY_COLOUR = "#191414"
DAYS_LABELLED = 16  # more days than this: label every second (third...) one


def reported(document: dict | None) -> dict:
    return (document or {}).get("state", {}).get("reported") or {}


def device_zone(document: dict | None) -> str:
    """The POSIX TZ string the device reports using (its default, UTC0, if none)."""
    return (reported(document).get("config") or {}).get("tz") or "UTC0"


def zone_label(posix: str) -> str:
    return "/".join(timezones.posix_names(posix))


def local_time(utc: int, posix: str) -> str:
    """2026-11-22 09:00 CET: the device's local clock at a UTC instant, with the zone's name."""
    moment, name = timezones.local_clock(utc, posix)
    return "%s %s" % (moment.strftime("%Y-%m-%d %H:%M"), name)


def every_day(by_day) -> list[tuple[datetime.date, int, int | None]]:
    """[["2026-11-20", 2, 300], ["2026-11-22", 1, 60]] -> (day, sessions, play seconds) for
    each day from the first to the last, 0 where the device lists none; play seconds None
    where earlier firmware reported [day, sessions] only."""
    days = {}
    for entry in by_day or []:
        try:
            played = int(entry[2]) if len(entry) > 2 else None
            days[datetime.date.fromisoformat(entry[0])] = (int(entry[1]), played)
        except (TypeError, ValueError, IndexError):
            continue
    if not days:
        return []
    first, last = min(days), max(days)
    each = (first + datetime.timedelta(n) for n in range((last - first).days + 1))
    return [(day, *days.get(day, (0, 0))) for day in each]


def duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return "%d h %02d min" % (hours, rest // 60)


def render_stats(document: dict | None) -> str:
    stats = reported(document).get("stats")
    if not stats:
        return "no statistics yet: the device reports them after its first session"
    posix = device_zone(document)
    hours = stats.get("by_hour") or [0] * 24
    peak = max(hours) or 1
    last = stats.get("last_motion")
    lines = [
        "sessions      %d" % stats.get("sessions", 0),
        "play time     %s" % duration(stats.get("play_s", 0)),
        "motions       %d" % stats.get("motions", 0),
        "last motion   %s" % (local_time(last, posix) if last else "never"),
        "",
        "sessions by hour of day (local time, %s)" % zone_label(posix),
    ]
    for hour, count in enumerate(hours):
        lines.append("  %02d:00  %-30s %d" % (hour, "#" * round(30 * count / peak), count))
    days = every_day(stats.get("by_day"))
    if days:
        lines.append("")
        lines.append("sessions and play time by day (local time, %s)" % zone_label(posix))
        for day, count, played in days:
            played = "" if played is None else "  " + duration(played)
            lines.append("  %s  %3d%s" % (day.isoformat(), count, played))
    return "\n".join(lines)


def title(thing: str, stats: dict, days) -> str:
    """Two lines: the thing and the days shown; the device's totals."""
    if not days:
        span = "no sessions by day yet"
    elif len(days) == 1:
        span = days[0][0].isoformat()
    else:
        span = "%s to %s" % (days[0][0].isoformat(), days[-1][0].isoformat())
    return "%s, %s\n%s, %s of music, %s in all" % (
        thing, span, plural(stats.get("sessions", 0), "session"),
        duration(stats.get("play_s", 0)), plural(stats.get("motions", 0), "motion"))


def plot_figure(thing: str, stats: dict, posix: str):
    """The matplotlib Figure: sessions by hour of day above, by day below."""
    from matplotlib import dates
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = every_day(stats.get("by_day"))
    zone = zone_label(posix)
    fig = Figure(figsize=(10, 7), layout="constrained")
    by_hour, by_day = fig.subplots(2, 1)
    fig.suptitle(title(thing, stats, days), fontsize=13)

    hours = stats.get("by_hour") or [0] * 24
    _bars(by_hour, list(range(24)), hours, HOUR_COLOUR)
    by_hour.set(title="Sessions by hour of day", ylabel="sessions", xlim=(-0.6, 23.6),
                xlabel="hour of day, local time (%s)" % zone)
    by_hour.set_xticks(range(24), ["%02d" % h for h in range(24)])

    by_day.set(title="Sessions by day: %s on %s" % (
        plural(sum(d[1] for d in days), "session"), plural(len(days), "day")),
        ylabel="sessions", xlabel="day, local time (%s)" % zone)
    if days:
        _bars(by_day, [d[0] for d in days], [d[1] for d in days], DAY_COLOUR)
        margin = datetime.timedelta(hours=14)  # a bar is 0.8 days wide, centred at midnight
        first, last = (datetime.datetime.combine(d, datetime.time()) for d in (days[0][0],
                                                                               days[-1][0]))
        by_day.set_xlim(first - margin, last + margin)
        step = math.ceil(len(days) / DAYS_LABELLED)
        by_day.xaxis.set_major_locator(dates.DayLocator(interval=step))
        by_day.xaxis.set_major_formatter(dates.DateFormatter("%a\n%d %b"))
    for axes in (by_hour, by_day):
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.spines[["top", "right"]].set_visible(False)
    return fig


def _bars(axes, x, counts, colour) -> None:
    """Bars centred on their ticks, each with its count above it; room left for the counts."""
    bars = axes.bar(x, counts, width=0.8, color=colour, align="center")
    axes.bar_label(bars, labels=[str(c) if c else "" for c in counts], padding=2)
    axes.set_ylim(0, max(1, max(counts, default=0)) * 1.15)


def plot_stats(document: dict | None, thing: str, path: str) -> None:
    stats = reported(document).get("stats")
    if not stats:
        raise SpottyError("no statistics to plot yet: the device reports them after its "
                          "first session")
    fig = plot_figure(thing, stats, device_zone(document))
    png = Path(path).suffix.lower() in ("", ".png")
    try:
        # The title goes into the PNG too, for whoever files or checks the image.
        fig.savefig(path, dpi=100, metadata={"Title": fig.get_suptitle()} if png else None)
    except OSError as e:
        raise SpottyError("cannot write %s: %s" % (path, e.strerror or e)) from e
    except ValueError as e:  # an unknown format: matplotlib names the ones it writes
        raise SpottyError("cannot write %s: %s" % (path, e)) from e
