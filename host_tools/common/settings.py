"""Settings as a user writes them -> the values the device's schema accepts.

The device's own `core.config` decides what is valid. Before it, the host reads two
friendlier forms the device does not know: an IANA zone name for `tz` (sent as its POSIX
string) and H:MM for quiet hours (7:00 is 07:00). Every host entry point uses this:
`config set`, `provision --config` and a scenario's `config`.
"""

import difflib
import re
import time

from . import devicepath, timezones
from .errors import RefusedError

QUIET_HOURS = ("quiet_start", "quiet_end")
_SHORT_HOUR = re.compile(r"\d:[0-5]\d")
_TZ_HINT = "; give a zone name such as Europe/Berlin or a POSIX TZ string"


def schema():
    devicepath.install()
    from core import config

    return config


def friendlier(key: str, value) -> tuple[object, str | None]:
    """(the value the schema reads, a note for the user or None); ValueError if a zone name
    is unknown."""
    if key in QUIET_HOURS and isinstance(value, str) and _SHORT_HOUR.fullmatch(value):
        return "0" + value, None
    if key == "tz" and isinstance(value, str) and value and not _is_posix(value):
        if timezones.looks_like_zone_name(value):
            return _zone(value)
    return value, None


def _is_posix(text: str) -> bool:
    devicepath.install()
    from core import tzparse

    try:
        tzparse.parse(text)
    except ValueError:
        return False
    return True


def _zone(name: str) -> tuple[str, str]:
    try:
        rule = timezones.posix_tz(name)
    except RefusedError as e:
        raise ValueError(str(e)) from e
    name = timezones.canonical_name(name)
    note = "%s -> %s (its POSIX TZ string, which the device reads)" % (name, rule)
    differ = timezones.days_that_differ(name, rule, int(time.time()))
    if differ:
        note += ("; it gives another local time than %s on %d days of the next two years: "
                 "a POSIX rule cannot say every change of this zone" % (name, differ))
    return rule, note


def check(wanted: dict, what: str = "refused") -> tuple[dict, list[str]]:
    """(accepted settings, notes such as a converted zone); RefusedError naming each refused
    key with its reason, and the valid settings when a key is unknown."""
    config = schema()
    converted, notes, refused = {}, [], {}
    for key, value in wanted.items():
        try:
            converted[key], note = friendlier(key, value)
        except ValueError as e:
            refused[key] = e.args[0]
            continue
        if note:
            notes.append("%s: %s" % (key, note))
    accepted, schema_refused = config.validate(converted)
    for key, reason in schema_refused.items():
        refused[key] = _explained(config, key, reason)
    if refused:
        raise RefusedError(_refusal(config, what, refused))
    return accepted, notes


def _refusal(config, what: str, refused: dict) -> str:
    text = "%s: %s" % (what, "; ".join("%s: %s" % item for item in sorted(refused.items())))
    if set(refused) - set(config.DEFAULTS):
        text += " (the settings: %s)" % ", ".join(config.DEFAULTS)
    return text


def _explained(config, key: str, reason: str) -> str:
    if key == "tz":
        return reason + _TZ_HINT
    if key in config.DEFAULTS:
        return reason
    close = difflib.get_close_matches(key, config.DEFAULTS, n=1)
    return "unknown setting" + (", did you mean %s?" % close[0] if close else "")


def unknown_keys(keys) -> None:
    """RefusedError for keys that are not settings, listing the ones there are."""
    config = schema()
    unknown = {k: _explained(config, k, "") for k in keys if k not in config.DEFAULTS}
    if unknown:
        raise RefusedError(_refusal(config, "refused", unknown))
