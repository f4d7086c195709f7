# The PIR sensor as presence: the edges the interrupt handler stored (edges.py)
# go through the glitch filter (core.motion); each arrival is a motion event.
from micropython import const

import log
from core.motion import Presence
from edges import EdgeRing

_DEFAULT_GLITCH_MS = const(200)


class Pir:
    def __init__(self, board, glitch_ms=None):
        self.board = board
        self.ring = EdgeRing()
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
