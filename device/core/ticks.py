# Wrapping millisecond ticks, as MicroPython's time.ticks_* do.
# On CPython (unit tests) the same arithmetic is emulated with the ESP32's
# 2**30 period, so wrap-around behaves the same on both runtimes.
try:
    from time import ticks_add, ticks_diff
except ImportError:
    _PERIOD = 1 << 30
    _HALF = _PERIOD >> 1

    def ticks_add(ticks, delta):
        return (ticks + delta) % _PERIOD

    def ticks_diff(new, old):
        return ((new - old + _HALF) % _PERIOD) - _HALF

