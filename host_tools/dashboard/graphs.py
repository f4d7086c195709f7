"""Usage graphs as SVG, drawn on the host with matplotlib (as `spotty stats --plot`).

Text stays text in the SVG (it is searchable, and the browser draws it in the page's
font); nothing is fetched from anywhere. The device keeps 14 days of sessions and play
time by day; the date axis is continuous over that window, so a day without a session
shows empty.
"""

import datetime
import functools
import io
import json
import threading

from . import words

DAYS = 14  # what the device keeps (device/core/stats.py)
GREEN = "#1db954"
DARK = "#2b2b2b"
# matplotlib's figures share state (fonts, the text cache): one drawing at a time.
_lock = threading.Lock()


def by_hour_svg(stats: dict, zone_label: str) -> str:
    hours = stats.get("by_hour") or [0] * 24
    return _cached("hour", json.dumps(hours), zone_label)


def by_day_svg(stats: dict) -> str:
    return _cached("day", json.dumps(stats.get("by_day") or []), "")


def day_series(by_day: list) -> tuple[list[datetime.date], list[int], list[int] | None]:
    """(each day of the window, sessions that day, play seconds or None): the last DAYS
    days up to the newest reported, days without sessions as 0. The device reports
    [day, sessions, play_s]; earlier firmware reported [day, sessions], without play time
    (None when no day has it)."""
    counts, seconds = {}, {}
    for entry in by_day:
        try:
            day = datetime.date.fromisoformat(entry[0])
        except (TypeError, ValueError, IndexError):
            continue
        counts[day] = int(entry[1]) if len(entry) > 1 and isinstance(entry[1], int) else 0
        if len(entry) > 2 and isinstance(entry[2], int):
            seconds[day] = entry[2]
    if not counts:
        return [], [], None
    last = max(counts)
    days = [last - datetime.timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    played = [seconds.get(d, 0) for d in days] if seconds else None
    return days, [counts.get(d, 0) for d in days], played


@functools.lru_cache(maxsize=64)
def _cached(kind: str, data: str, zone_label: str) -> str:
    import matplotlib

    with _lock, matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        if kind == "hour":
            return _hour_chart(json.loads(data), zone_label)
        return _day_chart(json.loads(data))


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 2.6), dpi=100)
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.yaxis.grid(True, color="#e4e4e4")
    axes.set_axisbelow(True)
    return figure, axes


def _hour_chart(hours: list, zone_label: str) -> str:
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure()
    axes.bar(range(24), hours, color=GREEN, width=0.8)
    axes.set_xticks(range(0, 24, 3), ["%02d:00" % h for h in range(0, 24, 3)])
    axes.set_xlim(-0.7, 23.7)
    axes.set_xlabel("hour of day, the device's local time (%s)" % zone_label)
    axes.set_ylabel("sessions")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_ylim(0, max(max(hours), 1) * 1.1)
    return _svg(figure)


def _day_chart(by_day: list) -> str:
    from matplotlib.ticker import MaxNLocator

    days, counts, seconds = day_series(by_day)
    figure, axes = _figure()
    positions = range(len(days))
    bars = axes.bar(positions, counts, color=GREEN if seconds is None else DARK, width=0.7,
                    label="sessions")
    axes.set_xticks(list(positions), [_day_label(d, i) for i, d in enumerate(days)])
    axes.set_ylabel("sessions")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes.set_ylim(0, max(counts + [1]) * 1.1)
    if seconds is not None:
        unit, per = play_unit(max(seconds))
        played = axes.twinx()
        line = played.plot(list(positions), [s / per for s in seconds], color=GREEN,
                           marker="o", label="play time")
        played.set_ylabel("play time (%s)" % unit)
        played.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        played.set_ylim(0, max(max(seconds) / per, 1) * 1.1)
        played.spines["top"].set_visible(False)
        axes.legend(handles=[bars, *line], loc="upper left", frameon=False, fontsize=8)
    return _svg(figure)


def play_unit(most_s: int) -> tuple[str, int]:
    """The unit of the play-time axis for a busiest day of most_s seconds: (name,
    seconds per unit), so that a few short sessions do not draw a flat line at 0 min."""
    if most_s < 120:
        return "s", 1
    if most_s < 3 * 3600:
        return "min", 60
    return "h", 3600


def _day_label(day: datetime.date, index: int) -> str:
    """"Mon\n23" under each bar, the month once at the first bar and when it changes."""
    label = "%s\n%d" % (day.strftime("%a"), day.day)
    if index == 0 or day.day == 1:
        label += "\n" + day.strftime("%b")
    return label


def _svg(figure) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    figure.set_layout_engine("tight")
    out = io.StringIO()
    FigureCanvasSVG(figure).print_svg(out, metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]  # no XML prolog or doctype inside the page


def summary(stats: dict | None) -> str:
    if not stats:
        return "no statistics yet: the device reports them after its first session"
    return "%s, %s of music, %s in all" % (
        words.count(stats.get("sessions", 0), "session"), words.duration(stats.get("play_s", 0)),
        words.count(stats.get("motions", 0), "motion"))
