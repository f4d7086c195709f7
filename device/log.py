# Firmware events: one JSON line each on the console (the simulator reads them).
# Callers pass only non-secret fields; nothing here ever sees a token.
import json
import sys

from core.ticks import ticks_diff

_since = None
_clock = None


def start_clock(ticks_fn):
    """Events carry "t": ms since the firmware reported ready."""
    global _since, _clock
    _clock = ticks_fn
    _since = ticks_fn()


def event(name, **fields):
    fields["ev"] = name
    if _clock is not None:
        fields["t"] = ticks_diff(_clock(), _since)
    try:
        json.dump(fields, sys.stdout)  # in pieces: the line is never built whole
    except MemoryError:
        pass  # an event is not worth a crash: near a full heap it may be cut short
    sys.stdout.write("\n")


def error(kind, exc):
    """An error event for an exception: its kind and the exception's first 80 characters."""
    event("error", error=kind, detail=repr(exc)[:80])
