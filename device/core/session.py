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
MAX_PAUSE_ATTEMPTS = const(6)

# Outcomes reported by the worker.
PLAYED = "played"
ADOPTED = "adopted"
BUSY = "busy"
RETRY = "retry"
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
            if not new_motion:
                return None
            refusal = policy.start_refusal(config, zone, utc, self.last_start)
            if refusal:
                return ("skip", refusal)
            self.state = STARTING
            self.last_start = utc
            self.attempts = 0
            return self._send("play")
        if self.state == ERROR:
            return ("skip", self.error) if new_motion else None
        if self.in_flight:
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
                return self._send("pause")
            return None
        # PAUSING, waiting to retry: someone came back, so the music stays.
        if new_motion:
            self.state = PLAYING
            self.retry_at = None
            return ("resume",)
        return self._send("pause") if self._due(now) else None

    def done(self, action, outcome, now, rnd=0.5, retry_after_ms=None, error=None):
        """The worker's result; returns an event like tick() does, or None."""
        self.in_flight = None
        if outcome == FATAL:
            return self.fail(error)
        if outcome == RETRY:
            limit = MAX_START_ATTEMPTS if action == "play" else MAX_PAUSE_ATTEMPTS
            if self.attempts >= limit:
                return self._give_up(action, error)
            wait = retry_after_ms if retry_after_ms is not None else backoff.delay_ms(
                self.attempts, rnd
            )
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
