# Presence from the PIR output level, with a glitch filter.
#
# The room is occupied while the (filtered) level is high; the session timeout
# counts from the moment it last went low. A level change only counts once it
# has held for glitch_ms, so short spikes and short dips are both ignored. An
# edge is stamped with the tick the interrupt recorded, so edges that waited
# in the ring during boot or a slow network call keep their true time.
from core.ticks import ticks_diff


class Presence:
    def __init__(self, glitch_ms):
        self.glitch_ms = glitch_ms
        self.occupied = False
        self.arrivals = 0  # confirmed rising edges: "motions"
        self.glitches = 0
        self.last_low_ms = None  # when presence last ended
        self.arrived_ms = None  # when the latest confirmed presence began
        self._candidate = None  # level waiting to be confirmed
        self._candidate_ms = 0

    def edge(self, level, t_ms):
        self.update(t_ms)  # a change that had already held long enough counts first
        level = 1 if level else 0
        if level == self.occupied:
            if self._candidate is not None:
                self.glitches += 1
                self._candidate = None
        elif self._candidate is None:
            self._candidate = level
            self._candidate_ms = t_ms

    def update(self, now_ms):
        if self._candidate is None or ticks_diff(now_ms, self._candidate_ms) < self.glitch_ms:
            return
        self.occupied = bool(self._candidate)
        if self.occupied:
            self.arrivals += 1
            self.arrived_ms = self._candidate_ms
        else:
            self.last_low_ms = self._candidate_ms
        self._candidate = None

    def rising(self):
        """A rise the filter is still judging: someone may be arriving."""
        return self._candidate == 1

    def quiet_for_ms(self, now_ms):
        """How long the room has been empty, or -1 while occupied / never seen."""
        if self.occupied or self.last_low_ms is None:
            return -1
        return ticks_diff(now_ms, self.last_low_ms)
