"""One thing's card on the overview: what its shadow says, in plain words, with what to do.

Pure: a shadow document and the time in, a Card out. Device times (last motion) are
shown in the device's own zone, from its reported `tz`.
"""

from dataclasses import dataclass, field

from . import words

HEARTBEAT_S = 6 * 3600  # the firmware reports at least this often (device/app.py)
OFFLINE_AFTER_S = HEARTBEAT_S + 15 * 60
LOGIN_WARN_DAYS = 14
CERT_WARN_DAYS = 21  # three weeks to build and push an update with new roots
# The firmware sets its clock at each heartbeat; a clock not set for this long drifts.
CLOCK_STALE_S = 2 * 86400
OTA_BUSY = ("downloading", "verifying", "staged")

STATES = {
    "idle": "idle, waiting for motion",
    "starting": "starting the music",
    "playing": "playing music",
    "pausing": "pausing the music",
    "backoff": "waiting to retry a Spotify call",
    "error": "stopped until you act",
    "safe_mode": "safe mode",
}

# The device's error states (device/net/spotify.py, app.py, cloud.py): (tone, words).
ERRORS = {
    "needs_reauth": ("error", "Spotify login expired: run `spotty spotify-login --thing {thing}`"),
    "premium_required": ("error", "Spotify refuses to control playback for this account, "
                         "which needs Spotify Premium: log in with a Premium account "
                         "(`spotty spotify-login --thing {thing}`)"),
    "device_asleep": ("warn", "Spotify does not list the speaker {speaker}: switch it on, or "
                      "check the speaker setting"),
    "not_provisioned": ("error", "The board is missing its Wi-Fi or Spotify login: run "
                        "`spotty provision {thing} ...`"),
    "iot_not_provisioned": ("error", "The board has no AWS IoT certificate: run "
                            "`spotty provision {thing} ...` again"),
    "rate_limited": ("warn", "Spotify asked it to wait{until}: it makes no call before then"),
    "no_speaker": ("error", "No speaker is set, so it makes no Spotify call: set one with "
                   "`spotty config set --thing {thing} spotify_device NAME`"),
    "device_unavailable": ("warn", "Spotify said the speaker {speaker} was temporarily "
                           "unavailable; it tries again by itself"),
    "user_not_registered": ("error", "Spotify refuses this user: the Spotify app is in "
                            "development mode and the user is not on its allow-list. Add them "
                            "in the Spotify Developer Dashboard (User Management); the next "
                            "visit tries again"),
    "owner_premium_required": ("error", "Spotify refuses the Spotify app: its owner's Premium "
                               "subscription has lapsed. Renew it; the next visit tries again"),
    "server_error": ("warn", "Spotify's servers answered with an error; it retries by itself"),
    "no_active_device": ("warn", "Spotify had no active speaker; it retries by itself"),
    "network": ("warn", "It cannot reach Spotify: check the Wi-Fi; it retries by itself"),
    "unauthorized": ("warn", "Spotify refused the access token; it refreshes it by itself"),
    "rejected": ("warn", "Spotify refused a request; it tries again at the next visit"),
}


@dataclass
class Note:
    tone: str  # "error", "warn" or "info"
    text: str


@dataclass
class Card:
    thing: str
    online: bool | None  # None: it has never reported
    presence: str  # "online" | "offline" | "never reported"
    last_report: str
    state: str = ""
    notes: list[Note] = field(default_factory=list)
    firmware: str = "-"
    update: str = ""
    updating: bool = False
    login: str = "-"
    cert: str = "-"
    last_motion: str = "-"
    wifi: str = "-"
    heap: str = "-"

    @property
    def tone(self) -> str:
        """The card's colour: the worst of its notes, offline, or ok."""
        tones = [n.tone for n in self.notes]
        for tone in ("error", "warn"):
            if tone in tones:
                return tone
        if self.online is not True:
            return "offline"
        return "updating" if self.updating else "ok"


def reported(document: dict | None) -> dict:
    return ((document or {}).get("state") or {}).get("reported") or {}


def desired(document: dict | None) -> dict:
    return ((document or {}).get("state") or {}).get("desired") or {}


def last_report(document: dict | None) -> int | None:
    """When the device last reported anything: the newest timestamp in its metadata."""
    stamps: list[int] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("timestamp"), int):
                stamps.append(node["timestamp"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(((document or {}).get("metadata") or {}).get("reported"))
    return max(stamps) if stamps else None


def card(thing: str, document: dict | None, now: float) -> Card:
    last = last_report(document)
    if last is None:
        return Card(thing, None, "never reported", "no report yet: it has not connected to "
                    "AWS IoT since it was provisioned")
    online = now - last <= OFFLINE_AFTER_S
    result = Card(thing, online, "online" if online else "offline",
                  "last report " + words.ago(now - last))
    if not online:
        result.notes.append(Note("warn", "No report for %s (it reports at least every 6 h): "
                                 "is it powered and on Wi-Fi?" % words.span(now - last)))
    mine = reported(document)
    status = mine.get("status") or {}
    config = mine.get("config") or {}
    zone = words.zone(config.get("tz"))
    result.state = STATES.get(status.get("state"), status.get("state") or "-")
    result.notes += _problems(thing, status, config)
    result.firmware = status.get("firmware") or "-"
    result.update, result.updating, note = _update(mine.get("ota"),
                                                   desired(document).get("ota"))
    if note:
        result.notes.append(note)
    result.login, note = _login(thing, status.get("token_days_left"))
    if note:
        result.notes.append(note)
    result.cert, note = _certificate(status, now)
    if note:
        result.notes.append(note)
    synced = status.get("clock_synced")
    if isinstance(synced, int) and now - synced > CLOCK_STALE_S:
        result.notes.append(Note("warn", "Its clock was last set %s ago (NTP): it drifts, and "
                                 "quiet hours with it. Can its network reach pool.ntp.org?"
                                 % words.span(now - synced)))
    last_motion = (mine.get("stats") or {}).get("last_motion")
    result.last_motion = words.local_time(last_motion, zone) if last_motion else "never"
    result.wifi = words.rssi(status.get("rssi"))
    result.heap = words.size(status.get("free_heap"))
    return result


def _problems(thing: str, status: dict, config: dict) -> list[Note]:
    notes = []
    if status.get("safe_mode"):
        notes.append(Note("error", "Safe mode after %s crashes: only Wi-Fi and the shadow link "
                          "run. Push a fixed firmware: `spotty ota push --thing %s ...`" % (
                              status.get("crashes", "repeated"), thing)))
    error = status.get("error")
    if error:
        tone, text = ERRORS.get(error, ("warn", "Error: %s" % error))
        speaker = config.get("spotify_device") or "(none set)"
        until = status.get("rate_limited_until")
        until = (" until " + words.local_time(until, words.zone(config.get("tz")))
                 if isinstance(until, int) else "")
        notes.append(Note(tone, text.format(thing=thing, speaker=words.quoted(speaker),
                                            until=until)))
    if status.get("token_refused"):
        notes.append(Note("warn", "A Spotify login sent to it was refused: %s" %
                          status["token_refused"]))
    return notes


def _update(reported_ota, desired_ota) -> tuple[str, bool, Note | None]:
    """(what the card says about updates, whether one is under way, a note if it failed)."""
    asked = desired_ota.get("version") if isinstance(desired_ota, dict) else None
    if isinstance(reported_ota, dict) and reported_ota.get("status"):
        version, step = reported_ota.get("version") or "?", reported_ota["status"]
        reason = reported_ota.get("reason")
        if step in OTA_BUSY:
            return "updating to %s: %s" % (version, step), True, None
        if step == "applied":
            done = "updated to %s (from %s)" % (version, reported_ota.get("previous") or "?")
            if asked and asked != version:
                return "update to %s requested" % asked, True, None
            return done, False, None
        if step == "rolled_back":
            text = "The update to %s was rolled back to %s: %s" % (
                version, reported_ota.get("previous") or "the previous version", reason)
            return "rolled back from %s" % version, False, Note("warn", text)
        if step == "refused":
            if asked and reported_ota.get("retry"):
                return "updating to %s: retrying the download" % version, True, None
            return "update to %s refused" % version, False, Note(
                "warn", "The update to %s was refused: %s" % (version, reason))
    if asked:
        return "update to %s requested: waits for the device" % asked, True, None
    return "", False, None


def _login(thing: str, days_left) -> tuple[str, Note | None]:
    if not isinstance(days_left, int):
        return "-", None
    if days_left <= 0:
        return "expired", None  # the error state says what to do
    text = "%d days left" % days_left
    if days_left <= LOGIN_WARN_DAYS:
        return text, Note("warn", "The Spotify login expires in %d days: run `spotty "
                          "spotify-login --thing %s`" % (days_left, thing))
    return text, None


def _certificate(status: dict, now: float) -> tuple[str, Note | None]:
    not_after = status.get("cert_not_after")
    if not isinstance(not_after, int):
        return "-", None
    which = status.get("cert_earliest") or "a certificate"
    text = "%s (%s)" % (words.date(not_after), which)
    days = (not_after - now) / 86400
    if days < 0:
        return text, Note("error", "%s expired on %s: update it with `spotty ota build --ca`"
                          % (which, words.date(not_after)))
    if days <= CERT_WARN_DAYS:
        return text, Note("warn", "%s expires in %d days: update it with `spotty ota build "
                          "--ca`" % (which, days))
    return text, None
