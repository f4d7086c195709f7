# The configuration schema (DESIGN.md §4), defined once: the device, the shadow
# and the CLI all validate with it. Validation goes key by key: a refused key
# comes back with its reason, the accepted ones still apply.
from core import tzparse

DEFAULTS = {
    "enabled": True,
    "timeout_s": 300,
    "motion_gap_s": 120,
    "quiet_start": None,
    "quiet_end": None,
    "tz": "UTC0",
    "spotify_device": "",
    "playlist_uri": None,
    "volume": None,
    "if_busy": "skip",
}

_CONTEXT_KINDS = ("playlist", "album", "artist", "show")
_MAX_TEXT = 128


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(low, high):
    def check(value):
        if not _is_int(value):
            raise ValueError("must be a whole number")
        if not low <= value <= high:
            raise ValueError("must be %d..%d" % (low, high))
        return value

    return check


def _bool(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _text(value):
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > _MAX_TEXT:
        raise ValueError("longer than %d characters" % _MAX_TEXT)
    return value


def _hhmm(value):
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValueError('must be "HH:MM" or null')
    hh, mm = value[:2], value[3:]
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ValueError('must be "HH:MM" between 00:00 and 23:59')
    return value


def _zone(value):
    try:
        tzparse.parse(_text(value))
    except ValueError as e:
        raise ValueError("not a POSIX TZ string (%s)" % e.args[0])
    return value


def _context_uri(value):
    """A spotify: URI, or an open.spotify.com link turned into one."""
    text = _text(value).strip()
    if text.startswith("https://open.spotify.com/"):
        parts = [p for p in text[25:].split("?")[0].split("/") if p]
        if parts and parts[0].startswith("intl-"):
            parts = parts[1:]
        text = "spotify:" + ":".join(parts)
    parts = text.split(":")
    ok = len(parts) == 3 and parts[0] == "spotify" and parts[1] in _CONTEXT_KINDS
    if not ok or not _base62(parts[2]):
        raise ValueError("must be a Spotify playlist, album, artist or show URI or link")
    return text


def _base62(text):
    # Bytes, not characters: each character of a str taken alone is interned for good.
    return bool(text) and all(48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122
                              for b in text.encode())


def _choice(*options):
    def check(value):
        if value not in options:
            raise ValueError("must be one of: " + ", ".join(options))
        return value

    return check


def _nullable(check):
    # "" stands for null too: a shadow can't hold a desired null (null deletes the key).
    return lambda value: None if value is None or value == "" else check(value)


_CHECKS = {
    "enabled": _bool,
    "timeout_s": _int_in(1, 7200),
    "motion_gap_s": _int_in(0, 3600),
    "quiet_start": _nullable(_hhmm),
    "quiet_end": _nullable(_hhmm),
    "tz": _zone,
    "spotify_device": _text,
    "playlist_uri": _nullable(_context_uri),
    "volume": _nullable(_int_in(0, 100)),
    "if_busy": _choice("skip", "transfer"),
}


def validate(changes):
    """(accepted, refused): normalised values, and key -> reason for the rest."""
    if not isinstance(changes, dict):
        return {}, {"config": "must be an object"}
    accepted, refused = {}, {}
    for key, value in changes.items():
        check = _CHECKS.get(key)
        if check is None:
            refused[key] = "unknown setting"
            continue
        try:
            accepted[key] = check(value)
        except ValueError as e:
            refused[key] = e.args[0]
    return accepted, refused


def apply(current, changes):
    """(merged, changed, refused): `changed` holds the accepted keys whose value moved."""
    accepted, refused = validate(changes)
    merged = dict(current)
    changed = {}
    for key, value in accepted.items():
        if merged.get(key) != value:
            changed[key] = value
        merged[key] = value
    return merged, changed, refused


def from_stored(stored):
    """The configuration at boot: defaults, overlaid with what flash holds and is valid."""
    merged, _, refused = apply(DEFAULTS, stored)
    return merged, refused
