# The PIR sensor as presence: the edges the interrupt handler stores in the ring
# go through the glitch filter (core.motion); each arrival is a motion event.
#
# EdgeRing.push() runs in interrupt context: it must not allocate, so the ring is
# a preallocated array and the counters are small ints. Only push() moves
# _written and only pop() moves _read, so producer and consumer never race. Each
# push sets `flag`, the board's (a ThreadSafeFlag on the ESP32: an interrupt may
# set one, and setting one allocates nothing), which wakes the task that handles
# edges (app.py) at once.
from array import array

from micropython import const

import log
from core.motion import Presence

_CAPACITY = const(16)
_DEFAULT_GLITCH_MS = const(200)


class EdgeRing:
    def __init__(self, flag):
        self._levels = array("b", bytes(_CAPACITY))
        self._ticks = array("l", [0] * _CAPACITY)
        self._written = 0
        self._read = 0
        self.overflows = 0
        self.flag = flag

    def push(self, level, ticks):
        self.flag.set()
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


class Pir:
    def __init__(self, board, glitch_ms=None):
        self.board = board
        self.ring = EdgeRing(board.edge_flag())
        board.attach_pir(self.ring)
        self.presence = Presence(_DEFAULT_GLITCH_MS if glitch_ms is None else glitch_ms)
        self.presence.edge(board.pir_level(), board.ticks_ms())
        self._overflows = 0
        self._arrivals_seen = 0
        self._occupied_seen = False

    def read(self, now):
        """Takes in the stored edges; True if someone arrived since the last read."""
        p = self.presence
        while True:
            edge = self.ring.pop()
            if edge is None:
                break
            p.edge(edge[0], edge[1])
        if self.ring.overflows != self._overflows:
            self._overflows = self.ring.overflows
            p.edge(self.board.pir_level(), now)  # edges were lost: the level is the truth
        p.update(now)
        if p.occupied != self._occupied_seen:
            self._occupied_seen = p.occupied
            if not p.occupied:
                log.event("vacant")
        if p.arrivals == self._arrivals_seen:
            return False
        self._arrivals_seen = p.arrivals
        log.event("motion", count=p.arrivals)
        return True
