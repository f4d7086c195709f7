"""Firmware events in plain words, for `spotty sim` and `make demo`."""

from ..common.timezones import local_clock

_REASONS = {
    "quiet_hours": "it is quiet hours",
    "disabled": "the device is switched off (enabled: false)",
    "motion_gap": "playback started too recently (motion_gap_s)",
    "busy_elsewhere": "music is already playing on another speaker (if_busy: skip)",
    "left_before_start": "the room was empty again before Spotify answered",
    "needs_reauth": "the Spotify login has expired: run `spotty spotify-login`",
    "premium_required": "Spotify Premium is required to control playback",
    "rate_limited": "Spotify asked it to wait (Retry-After): no call before then",
    "no_speaker": "no speaker is set (spotify_device): it makes no Spotify call",
    "device_unavailable": "Spotify said the speaker was temporarily unavailable",
    "user_not_registered": "the user is not on the Spotify app's allow-list (development mode)",
    "owner_premium_required": "the Spotify app owner's Premium subscription has lapsed",
    "device_asleep": "the speaker is not listed by Spotify (asleep or off)",
    "not_playing": "nothing was playing any more",
    "moved_elsewhere": "the music was moved to another speaker",
    "context_changed": "someone started other music",
}


def _why(code):
    return _REASONS.get(code, code)


def _span(seconds: int) -> str:
    """7 days, 2 h 30 min, 45 s: a span in words, to the largest units that matter."""
    days, rest = divmod(abs(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [("%d day%s" % (days, "" if days == 1 else "s")) if days else "",
             "%d h" % hours if hours else "", "%d min" % minutes if minutes else "",
             "%d s" % secs if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _clock_words(event) -> str:
    if "advance_s" in event:
        return "%s later (the scenario moves the clocks on)" % _span(event["advance_s"])
    drift = event.get("rtc_offset_s", 0)
    return "the board's clock drifts %s %s" % (_span(drift), "ahead" if drift > 0 else "back")


def _sync_words(step_s: int) -> str | None:
    if not step_s:
        return None  # right already: not worth a line
    return "clock set by NTP: it was %s %s" % (_span(step_s), "slow" if step_s > 0 else "fast")


def describe(event) -> str | None:
    """What an event says, or None for events not worth showing."""
    kind = event.get("ev")
    text = {
        "ready": lambda e: "firmware %s ready%s" % (
            e.get("version", "?"), " (error: %s)" % _why(e["error"]) if e.get("error") else ""),
        "motion": lambda e: "motion detected",
        "vacant": lambda e: "room empty, the timeout starts counting",
        "play": lambda e: "music started on %s%s, %d ms after the motion" % (
            e.get("device") or "the active speaker",
            " (%s)" % e["context"] if e.get("context") else "", e.get("latency_ms", 0)),
        "adopt": lambda e: "music was already playing on %s: this visit adopts it" % (
            e.get("device") or "the speaker"),
        "skip": lambda e: "no music: %s" % _why(e.get("why")),
        "pause": lambda e: "paused the music on %s" % (e.get("device") or "the speaker"),
        "no_pause": lambda e: "left the music alone: %s" % _why(e.get("why")),
        "session_end": lambda e: "session over after %d s" % e.get("duration_s", 0),
        "resumed": lambda e: "someone came back: the music keeps playing",
        "retry": lambda e: "Spotify call failed (%s): %s again in %.1f s" % (
            _why(e.get("why")), e.get("action"), e.get("wait_ms", 0) / 1000),
        "error": lambda e: "error: %s" % _why(e.get("error")),
        "token_rotated": lambda e: "Spotify issued a new refresh token; stored it",
        "client_secret_removed": lambda e: "removed the Spotify client secret an older "
        "provisioning left on the flash (PKCE needs none)",
        "config_applied": lambda e: "new settings from the shadow: %s" % ", ".join(
            "%s=%s" % kv for kv in sorted(e.get("changed", {}).items())),
        "config_refused": lambda e: "refused settings: %s" % "; ".join(
            "%s (%s)" % kv for kv in sorted(e.get("refused", {}).items())),
        "crash": lambda e: "firmware crashed (%s) and restarted" % e.get("error"),
        "clock": _clock_words,
        "clock_sync": lambda e: _sync_words(e.get("step_s", 0)),
        "wifi": lambda e: "Wi-Fi %s (the scenario)" % ("back" if e.get("wifi") else "cut"),
        "wifi_down": lambda e: "the firmware finds Wi-Fi gone and reconnects",
        "wifi_up": lambda e: "Wi-Fi reconnected (%d since boot); clock set by NTP" % e.get(
            "reconnects", 0),
    }.get(kind)
    return text(event) if text else None


class Narrator:
    """One line an event: seconds since the firmware was ready, the device's local clock
    (the scenario's clock in its tz, following reboots, tz changes, time jumps and drift),
    and what happened."""

    def __init__(self, clock_utc: int, posix_tz: str):
        self._tz = posix_tz
        self._ready_utc = clock_utc  # the board's clock when the firmware said ready
        self._up_ms = 0  # how long the firmware was up when it went down
        self._drift_s = 0  # the board's wall clock ahead of the true time

    def line(self, event) -> str | None:
        kind = event.get("ev")
        if kind == "reset":
            self._up_ms = event.get("uptime_ms", 0)
        elif kind == "cut":
            self._up_ms = event.get("t", 0)
        elif kind == "reboot":  # the runner moves the clock on by the time it was up
            self._ready_utc += self._up_ms // 1000
            self._drift_s = 0
        elif kind == "clock":
            self._ready_utc += event.get("advance_s", 0)
            self._drift_s += event.get("rtc_offset_s", 0)
        elif kind == "clock_sync":
            self._drift_s = 0
        elif kind == "config_applied" and "tz" in event.get("changed", {}):
            self._tz = event["changed"]["tz"]
        text = describe(event)
        return "%s  %s" % (self._stamp(event), text) if text else None

    def _stamp(self, event) -> str:
        if "t" not in event:
            return "%-20s" % "  boot"
        moment, name = local_clock(self._ready_utc + event["t"] // 1000 + self._drift_s,
                                   self._tz)
        return "%6.1fs %s %-5s" % (event["t"] / 1000, moment.strftime("%H:%M:%S"), name)
