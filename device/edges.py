# PIR edges recorded by the interrupt handler, drained by the control loop.
# push() runs in interrupt context: it must not allocate, so the ring is a
# preallocated array and the counters are small ints. Only push() moves
# _written and only pop() moves _read, so producer and consumer never race.
from array import array

from micropython import const

_CAPACITY = const(16)


class EdgeRing:
    def __init__(self):
        self._levels = array("b", bytes(_CAPACITY))
        self._ticks = array("l", [0] * _CAPACITY)
        self._written = 0
        self._read = 0
        self.overflows = 0

    def push(self, level, ticks):
        if self._written - self._read >= _CAPACITY:
            self.overflows += 1  # the reader resyncs with the pin level
            return
        slot = self._written % _CAPACITY
        self._levels[slot] = level
        self._ticks[slot] = ticks
        self._written += 1

    def pop(self):
        """The oldest pending edge as (level, ticks), or None."""
        if self._read == self._written:
            return None
        slot = self._read % _CAPACITY
        self._read += 1
        return self._levels[slot], self._ticks[slot]
