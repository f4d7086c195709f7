# The device's side of the classic shadow document, kept pure: what a delta or
# get/accepted asks for, and the update that acknowledges it.
#
# A refused key is reported under reported.config_errors with its reason, and
# its desired value is deleted (desired null), so the shadow holds no delta for
# it forever. A value the device normalises (an open.spotify.com link becomes a
# spotify: URI) is written back to desired for the same reason.
from core.jsonscan import Scanner

# What the device reads of an incoming shadow message: metadata and reported
# state (most of a get/accepted document) are skipped, never built.
# A wanted section over the scanner's bounds (4 KB) reads as this; the device
# refuses it as a whole and deletes it from desired, so the shadow is not stuck.
TOO_BIG = "too big for the device"
_FIELDS = ("version", "code", "message", "state.desired.config",
           "state.desired.ota", "state.config", "state.ota")


class Message:
    """An incoming shadow message, fed piece by piece as it is read (never whole):
    result() is (fields, None), fields mapping paths such as "state.desired.config"
    to what the message holds there, or (None, reason). len() is its size in bytes."""

    def __init__(self):
        # Whether a get answer holds a delta; its content repeats desired's.
        self._scanner = Scanner(_FIELDS, present=("state.delta",))
        self._scanner.too_long = TOO_BIG
        self._started = False
        self._problem = None

    def __len__(self):
        return self._scanner.size

    def feed(self, buf, n):
        """The next n bytes of the message, at the start of buf."""
        if self._problem:
            self._scanner.size += n
            return
        if not self._started:
            for i in range(n):  # the first byte but blanks, read in place: no copies
                if buf[i] not in b" \t\r\n":
                    self._started = True
                    if buf[i] != 0x7B:  # {
                        self._problem = "not a JSON object"
                    break
        try:
            self._scanner.feed(buf, n)
        except (ValueError, UnicodeError):
            self._problem = self._problem or "not JSON"

    def result(self):
        if not self._problem:
            try:
                return self._scanner.close(), None
            except ValueError:
                self._problem = "not a JSON object" if not self._started else "not JSON"
        return None, self._problem


def wanted(doc, source, section="config"):
    """The desired section in a parsed message ("delta" or "get" answer): a dict, a
    non-dict (refused as a whole), or None when the message asks for nothing. A
    delta holds only the leaves that differ from reported, a get answer the whole
    section."""
    return doc.get(("state.desired." if source == "get" else "state.") + section)


def merge(into, state):
    """Merge update state {"reported": {...}, "desired": {...}} into another; returns it."""
    if state:
        for part, sections in state.items():
            if isinstance(into.get(part), dict) and isinstance(sections, dict):
                into[part].update(sections)
            else:
                into[part] = sections
    return into


def version(doc):
    value = doc.get("version")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def acknowledge(current, desired, refused):
    """(new_config, changed, update_state, refused now) for a desired config (any JSON
    value); refused: {key: reason} of the last answer, so that errors fixed since are
    cleared in reported.config_errors."""
    if not isinstance(desired, dict):
        new, changed = current, {}
        errors = {"config": desired if desired is TOO_BIG else "must be an object"}
        fix = None  # delete desired.config as a whole
    else:
        from core import config as schema  # rare: the caller may drop it afterwards

        new, changed, errors = schema.apply(current, desired)
        fix = {key: None for key in errors}
        for key, value in desired.items():
            if key not in errors and new[key] != value:
                fix[key] = new[key]  # normalised; None (from "") deletes it
    update = {key: None for key in refused if key not in errors}
    update.update(errors)
    state = {"reported": {"config": new, "config_errors": update or None}}
    if fix is None or fix:
        state["desired"] = {"config": fix}
    return new, changed, state, dict(errors)
