"""`spotty config` and `spotty stats`: the device's settings and use, through its shadow.

Values are checked with the device's own `core.config` before anything is sent.
"""

import json
import time
from collections.abc import Callable

from ..common import devicepath
from ..common.errors import DeviceOffline, RefusedError, SpottyError


def _schema():
    devicepath.install()
    from core import config

    return config


def parse_assignments(pairs: list[str]) -> dict:
    """["timeout_s=60", "quiet_start=22:00", "volume=null"] -> validated settings.

    A value is read as JSON when it parses (60, true, null) and as text otherwise.
    null goes out as "": a shadow cannot hold a desired null (null deletes the key).
    """
    schema = _schema()
    wanted = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise RefusedError("expected KEY=VALUE, got %r" % pair)
        try:
            wanted[key] = json.loads(text)
        except ValueError:
            wanted[key] = text
    return checked(schema, wanted)


def defaults_for(keys: list[str]) -> dict:
    schema = _schema()
    unknown = [k for k in keys if k not in schema.DEFAULTS]
    if unknown:
        raise RefusedError("unknown setting: %s" % ", ".join(unknown))
    return checked(schema, {k: schema.DEFAULTS[k] for k in keys})


def checked(schema, wanted: dict) -> dict:
    accepted, refused = schema.validate(wanted)
    if refused:
        raise RefusedError("refused: " + "; ".join("%s %s" % kv for kv in sorted(refused.items())))
    return {k: ("" if v is None else v) for k, v in accepted.items()}


def sections(document: dict | None) -> tuple[dict, dict, dict, dict]:
    """(desired, reported, delta, errors) config sections of a shadow document."""
    state = (document or {}).get("state", {})

    def part(name):
        value = (state.get(name) or {}).get("config")
        return value if isinstance(value, dict) else {}

    errors = (state.get("reported") or {}).get("config_errors") or {}
    return part("desired"), part("reported"), part("delta"), errors


def render_config(document: dict | None) -> str:
    """Desired, reported and pending side by side, one line a setting."""
    if document is None:
        return "no shadow yet: the device has not connected to AWS IoT since provisioning"
    desired, reported, delta, errors = sections(document)
    keys = list(_schema().DEFAULTS) + sorted(set(desired) - set(_schema().DEFAULTS))
    rows = [("setting", "desired", "reported", "pending")]
    for key in keys:
        pending = "refused: " + errors[key] if key in errors else ("yes" if key in delta else "")
        # The shadow drops null values, so a reported config without the key means null.
        shown = _show(reported, key) if key in reported or not reported else "null"
        rows.append((key, _show(desired, key), shown, pending))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    status = (document.get("state", {}).get("reported") or {}).get("status") or {}
    if status:
        lines.append("")
        lines.append("device: firmware %s, %s%s, Spotify login valid for %s more days" % (
            status.get("firmware", "?"), status.get("state", "?"),
            " (error: %s)" % status["error"] if status.get("error") else "",
            status.get("token_days_left", "?")))
    return "\n".join(lines)


def _show(section: dict, key: str) -> str:
    return json.dumps(section[key]) if key in section else "-"


def wait_until_reported(get: Callable[[], dict | None], wanted: dict, timeout_s: float,
                        poll_s: float = 1.0, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Poll until the device reports `wanted` (or refuses a key); the final document."""
    schema = _schema()
    expected, _ = schema.validate({k: (None if v == "" else v) for k, v in wanted.items()})
    deadline = clock() + timeout_s
    while True:
        document = get()
        _, reported, _, errors = sections(document)
        refused = {k: errors[k] for k in wanted if errors.get(k)}
        if refused:
            raise RefusedError("the device refused: " + "; ".join(
                "%s %s" % kv for kv in sorted(refused.items())))
        if all(reported.get(k) == v for k, v in expected.items()):
            return document
        if clock() >= deadline:
            raise DeviceOffline(
                "the device has not reported the new values within %d s; it is probably "
                "offline or asleep. The change stays in the shadow and applies when it "
                "connects (check with `spotty config get`)." % timeout_s)
        sleep(poll_s)


def watch(get: Callable[[], dict | None], show: Callable[[str], None], interval_s: float,
          count: int | None = None, sleep=time.sleep) -> None:
    """Print the settings whenever the shadow's version changes; stop after `count` shows."""
    last = object()
    shown = 0
    while True:
        document = get()
        version = document.get("version") if document else None
        if version != last:
            last = version
            shown += 1
            show("version %s at %s" % (version, time.strftime("%H:%M:%S")))
            show(render_config(document))
            if count is not None and shown >= count:
                return
        sleep(interval_s)


# -- stats ------------------------------------------------------------------

def render_stats(document: dict | None) -> str:
    stats = ((document or {}).get("state", {}).get("reported") or {}).get("stats")
    if not stats:
        return "no statistics yet: the device reports them after its first session"
    hours = stats.get("by_hour") or [0] * 24
    peak = max(hours) or 1
    lines = [
        "sessions      %d" % stats.get("sessions", 0),
        "play time     %s" % _duration(stats.get("play_s", 0)),
        "motions       %d" % stats.get("motions", 0),
        "last motion   %s" % _when(stats.get("last_motion")),
        "",
        "sessions by hour of day (local time)",
    ]
    for hour, count in enumerate(hours):
        lines.append("  %02d:00  %-30s %d" % (hour, "#" * round(30 * count / peak), count))
    days = stats.get("by_day") or []
    if days:
        lines.append("")
        lines.append("sessions by day")
        for day, count in days:
            lines.append("  %s  %d" % (day, count))
    return "\n".join(lines)


def plot_stats(document: dict | None, path: str) -> None:
    stats = ((document or {}).get("state", {}).get("reported") or {}).get("stats")
    if not stats:
        raise SpottyError("no statistics to plot yet")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = stats.get("by_day") or []
    fig, (by_hour, by_day) = plt.subplots(2, 1, figsize=(9, 6.5))
    by_hour.bar(range(24), stats.get("by_hour") or [0] * 24, color="#1db954")
    by_hour.set(title="Sessions by hour of day (local time)", xlabel="hour", ylabel="sessions",
                xticks=range(0, 24, 2))
    by_day.bar([d for d, _ in days], [c for _, c in days], color="#191414")
    by_day.set(title="Sessions by day", ylabel="sessions")
    by_day.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return "%d h %02d min" % (hours, rest // 60)


def _when(utc) -> str:
    if not utc:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(utc))
