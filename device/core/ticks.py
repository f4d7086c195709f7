# Wrapping millisecond ticks with the ESP32's period (2**30 ms, 12.4 days) on
# every port, so the simulated board (whose ticks wrap as an ESP32's do) and
# CPython behave as the board does. A tick value compares right only within
# half a period: keep none longer than minutes; long spans are UTC seconds.
# 0x3FFFFFFF masks, 0x20000000 is half: 2**30 is no small int on a 32-bit port.


def ticks_add(ticks, delta):
    return (ticks + delta) & 0x3FFFFFFF


def ticks_diff(new, old):
    d = (new - old) & 0x3FFFFFFF
    return d if d < 0x20000000 else d - 0x3FFFFFFF - 1
