"""`spotty config`: the device's settings, through its shadow.

Values are checked with the device's own `core.config` before anything is sent.
"""

import difflib
import json
import time
from collections.abc import Callable

from ..common import settings
from ..common.errors import DeviceOffline, RefusedError


def parse_assignments(pairs: list[str]) -> tuple[dict, list[str]]:
    """["timeout_s=60", "quiet_start=7:00", "tz=Europe/Berlin"] -> (validated settings, notes
    for the user, such as the POSIX string a zone name became).

    A value is read as JSON when it parses (60, true, null) and as text otherwise.
    """
    wanted = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise RefusedError("expected KEY=VALUE, got %r" % pair)
        try:
            wanted[key] = json.loads(text)
        except ValueError:
            wanted[key] = text
    return settings.check(wanted)


def defaults_for(keys: list[str]) -> dict:
    settings.unknown_keys(keys)
    return {k: settings.schema().DEFAULTS[k] for k in keys}


def for_shadow(values: dict) -> dict:
    """null goes out as "": a shadow cannot hold a desired null (null deletes the key)."""
    return {k: ("" if v is None else v) for k, v in values.items()}


def describe(values: dict) -> str:
    return ", ".join("%s=%s" % (k, json.dumps(v)) for k, v in values.items())


def back_to_default(key: str) -> str:
    default = settings.schema().DEFAULTS[key]
    return "%s: back to the default%s" % (
        key, "" if default is None else " (%s)" % json.dumps(default))


def unknown_thing_warning(shadow, document: dict | None) -> str | None:
    """A warning when the thing may be a typo: not in the AWS IoT registry, or its device
    has never reported to the shadow. The change is sent all the same."""
    registered = shadow.registered()
    if registered is False:
        close = difflib.get_close_matches(shadow.thing, shadow.thing_names(), n=1)
        return "there is no thing named %s in AWS IoT%s; the change is stored in its shadow " \
            "all the same" % (shadow.thing, " (did you mean %s?)" % close[0] if close else "")
    if not ((document or {}).get("state") or {}).get("reported"):
        return "%s has never reported to its shadow: is the thing name right? The change " \
            "waits there until a device of that name connects" % shadow.thing
    return None


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
    defaults = settings.schema().DEFAULTS
    keys = list(defaults) + sorted(set(desired) - set(defaults))
    rows = [("setting", "desired", "reported", "pending")]
    for key in keys:
        pending = "refused: " + errors[key] if key in errors else ("yes" if key in delta else "")
        # The shadow drops null values, so a reported config without the key means null.
        shown = _show(reported, key) if key in reported or not reported else "null"
        rows.append((key, _show(_as_read(desired), key), shown, pending))
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


def _as_read(desired: dict) -> dict:
    """Desired settings as the device reads them: "" is null where null is allowed."""
    accepted, _ = settings.schema().validate(desired)
    return {k: accepted.get(k, v) for k, v in desired.items()}


def wait_until_reported(get: Callable[[], dict | None], wanted: dict, timeout_s: float,
                        poll_s: float = 1.0, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Poll until the device reports `wanted` (validated settings; None for null) or refuses
    a key; the final document."""
    deadline = clock() + timeout_s
    while True:
        document = get()
        _, reported, _, errors = sections(document)
        refused = {k: errors[k] for k in wanted if errors.get(k)}
        if refused:
            raise RefusedError("the device refused: " + "; ".join(
                "%s %s" % kv for kv in sorted(refused.items())))
        if all(reported.get(k) == v for k, v in wanted.items()):
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
