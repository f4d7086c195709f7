# Firmware events: one JSON line each on the console (the simulator reads them).
# Callers pass only non-secret fields; nothing here ever sees a token.
import json

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
        from core.ticks import ticks_diff

        fields["t"] = ticks_diff(_clock(), _since)
    print(json.dumps(fields))
