# The session state machine: decides when to start and pause playback.
#
# tick() is called by the control loop with the time and the presence; it
# returns what to do. The worker runs "play"/"pause" against Spotify and
# reports back through done(). While a retry waits, ticks keep running, so
# motion is still counted and the timeout still enforced.
from micropython import const

from core import backoff, policy
from core.ticks import ticks_add, ticks_diff

IDLE = "idle"
STARTING = "starting"
PLAYING = "playing"
PAUSING = "pausing"
ERROR = "error"

MAX_START_ATTEMPTS = const(5)
# While the room stays empty and our music plays, the pause is tried again for this long,
# with a backoff that grows to _PAUSE_CAP_MS: a Wi-Fi drop or a Spotify blip at the
# timeout must not leave music playing in an empty room.
PAUSE_PATIENCE_MS = const(1800000)
_PAUSE_CAP_MS = const(120000)

# Outcomes reported by the worker.
PLAYED = "played"
ADOPTED = "adopted"
BUSY = "busy"
RETRY = "retry"
STOP = "stop"  # no more attempts for this visit (the next may try again)
FATAL = "fatal"
PAUSED = "paused"


class Session:
    def __init__(self):
        self.state = IDLE
        self.in_flight = None  # "play" | "pause" while the worker runs it
        self.retry_at = None  # ticks before which the pending action waits
        self.attempts = 0
        self.seen_arrivals = 0
        self.last_start = None  # UTC seconds of the last start attempt
        self.pause_since = None  # ticks of the first attempt of the pause under way
        self.came_back = False  # someone arrived while the pause was on its way
        self.error = None

    def phase(self):
        """State for reports and the LED: "backoff" while a retry waits."""
        return "backoff" if self.retry_at is not None else self.state

    def tick(self, now, utc, presence, config, zone):
        """One of ("play",), ("pause",), ("skip", why), ("end", why, started), ("resume",),
        None. now: ticks, for waits of seconds; utc: seconds, for what may span days."""
        new_motion = presence.arrivals != self.seen_arrivals
        self.seen_arrivals = presence.arrivals
        if self.state == IDLE:
            came_back, self.came_back = self.came_back, False
            if not (new_motion or came_back):
                return None
            # Back while the pause was on its way: the music comes back, gap or not.
            refusal = policy.start_refusal(config, zone, utc,
                                           None if came_back else self.last_start)
            if refusal:
                return ("skip", refusal)
            self.state = STARTING
            self.last_start = utc
            self.attempts = 0
            return self._send("play")
        if self.state == ERROR:
            return ("skip", self.error) if new_motion else None
        if self.in_flight:
            if new_motion and self.in_flight == "pause":
                self.came_back = True
            return None
        timed_out = presence.quiet_for_ms(now) >= config["timeout_s"] * 1000
        if self.state == STARTING:
            if timed_out:
                self._to_idle()
                return ("skip", "left_before_start")
            return self._send("play") if self._due(now) else None
        if self.state == PLAYING:
            if timed_out:
                self.state = PAUSING
                self.attempts = 0
                self.pause_since = now
                return self._send("pause")
            return None
        # PAUSING, waiting to retry: someone came back, so the music stays.
        if new_motion or self.came_back:
            self.came_back = False
            self.state = PLAYING
            self.retry_at = None
            return ("resume",)
        return self._send("pause") if self._due(now) else None

    def may_start(self, utc, config, zone):
        """Whether an arrival now would start the music (as tick() would decide)."""
        return self.state == IDLE and not policy.start_refusal(config, zone, utc,
                                                               self.last_start)

    def done(self, action, outcome, now, rnd=0.5, retry_after_ms=None, error=None):
        """The worker's result; returns an event like tick() does, or None."""
        self.in_flight = None
        if outcome == FATAL:
            return self.fail(error)
        if outcome == STOP:
            return self._give_up(action, error)
        if outcome == RETRY:
            if action == "play":
                if self.attempts >= MAX_START_ATTEMPTS:
                    return self._give_up(action, error)
                cap = backoff.CAP_MS
            else:
                if ticks_diff(now, self.pause_since) >= PAUSE_PATIENCE_MS:
                    return self._give_up(action, error)
                cap = _PAUSE_CAP_MS
            wait = retry_after_ms if retry_after_ms is not None else backoff.delay_ms(
                self.attempts, rnd, backoff.BASE_MS, cap)
            self.retry_at = ticks_add(now, wait)
            return ("retry", action, wait, error)
        self.retry_at = None
        if action == "play":
            if outcome == BUSY:
                self._to_idle()
                return ("skip", "busy_elsewhere")
            self.state = PLAYING
            return None
        return self._end(outcome)

    def fail(self, error):
        """An error only the owner can fix: no more Spotify calls until then."""
        self._to_idle()
        self.state = ERROR
        self.error = error
        self.came_back = False
        return ("error", error)

    def clear_error(self):
        """Configuration or credentials changed: try again on the next motion."""
        if self.state == ERROR:
            self.state = IDLE
            self.error = None

    def _send(self, action):
        self.in_flight = action
        self.retry_at = None
        self.attempts += 1
        return (action,)

    def _due(self, now):
        return self.retry_at is None or ticks_diff(now, self.retry_at) >= 0

    def _give_up(self, action, error):
        if action == "play":
            self._to_idle()
            return ("skip", error or "start_failed")
        return self._end("pause_failed")

    def _end(self, why):
        """The session's end and its start (UTC): a session may outlast half a tick period."""
        self._to_idle()
        return ("end", why, self.last_start)

    def _to_idle(self):
        self.state = IDLE
        self.in_flight = None
        self.retry_at = None
        self.pause_since = None
