"""The mock of the Spotify Web API's player (api.spotify.com `/v1/me/player...`):
speakers, what plays where, and the commands a client sends. Bearer tokens are checked
against the access tokens the mock accounts service issued. Status codes and error
bodies follow Spotify's.
"""

import hashlib
import time
from dataclasses import dataclass, field

from .mock_accounts import MockAccounts
from .mock_http import Reply, Request, api_error

TRACK_MS = 210000
DEFAULT_TRACK = "spotify:track:4uLU6hMCjMI75M1A2tKUQC"


def _device(device_id: str, name: str) -> dict:
    return {"id": device_id, "name": name, "type": "Speaker", "is_active": False,
            "is_private_session": False, "is_restricted": False, "volume_percent": 40,
            "supports_volume": True}


# A household's speakers, as Spotify lists them: ours, another speaker, and the phones and
# computers that appear while their apps are open.
DEFAULT_DEVICES = (
    _device("dev-bathroom-1", "Bathroom"), _device("dev-kitchen-1", "Kitchen"),
    dict(_device("dev-tv-1", "Living Room TV"), type="TV", volume_percent=20),
    dict(_device("dev-phone-1", "Alice's iPhone"), type="Smartphone", volume_percent=100,
         supports_volume=False),
    dict(_device("dev-web-1", "Web Player (Chrome)"), type="Computer", volume_percent=100),
)
_DEVICE_DEFAULTS = {"type": "Speaker", "is_private_session": False, "is_restricted": False,
                    "volume_percent": 50, "supports_volume": True}


def unauthorized(message: str) -> Reply:
    challenge = 'Bearer realm="spotify", error="invalid_token", error_description="%s"' % message
    return api_error(401, message, **{"WWW-Authenticate": challenge})


def _no_active_device() -> Reply:
    return api_error(404, "Player command failed: No active device found", "NO_ACTIVE_DEVICE")


def _restricted() -> Reply:
    return api_error(403, "Player command failed: Restriction violated", "UNKNOWN")


def _spotify_uri(value, kinds: tuple) -> bool:
    if not isinstance(value, str):
        return False
    parts = value.split(":")
    return len(parts) >= 3 and parts[0] == "spotify" and parts[1] in kinds and all(parts)


# -- player state ---------------------------------------------------------------------------

@dataclass
class _Playback:
    device_id: str
    is_playing: bool
    context_uri: str | None
    track_uri: str
    progress_ms: int = 0
    since: float = field(default_factory=time.monotonic)

    def position(self, now: float) -> int:
        elapsed = int((now - self.since) * 1000) if self.is_playing else 0
        return (self.progress_ms + elapsed) % TRACK_MS

    def set_playing(self, playing: bool, now: float) -> None:
        self.progress_ms = self.position(now)
        self.since = now
        self.is_playing = playing


def _first_track(context_uri: str) -> str:
    digest = hashlib.sha256(context_uri.encode()).hexdigest()[:22]
    return "spotify:track:" + digest


def _context_json(uri: str) -> dict:
    kind, item_id = uri.split(":")[-2:]
    return {"type": kind, "uri": uri, "href": "https://api.spotify.com/v1/%ss/%s" % (kind, item_id),
            "external_urls": {"spotify": "https://open.spotify.com/%s/%s" % (kind, item_id)}}


# Where a catalogue item is available: Spotify lists every market (some 185) when the
# request names none, which is most of a player state's size.
MARKETS = (
    "AD AE AG AL AM AO AR AT AU AZ BA BB BD BE BF BG BH BI BJ BN BO BR BS BT BW BY BZ CA CD CG "
    "CH CI CL CM CO CR CV CW CY CZ DE DJ DK DM DO DZ EC EE EG ES ET FI FJ FM FR GA GB GD GE GH "
    "GM GN GQ GR GT GW GY HK HN HR HT HU ID IE IL IN IQ IS IT JM JO JP KE KG KH KI KM KN KR KW "
    "KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MG MH MK ML MN MO MR MT MU MV MW MX MY MZ "
    "NA NE NG NI NL NO NP NR NZ OM PA PE PG PH PK PL PR PS PT PW PY QA RO RS RW SA SB SC SE SG "
    "SI SK SL SM SN SR ST SV SZ TD TG TH TJ TL TN TO TR TT TV TW TZ UA UG US UY UZ VC VE VN VU "
    "WS XK ZA ZM ZW").split()


def _links(kind: str, item_id: str) -> dict:
    return {"external_urls": {"spotify": "https://open.spotify.com/%s/%s" % (kind, item_id)},
            "href": "https://api.spotify.com/v1/%ss/%s" % (kind, item_id),
            "id": item_id, "type": kind, "uri": "spotify:%s:%s" % (kind, item_id)}


def _images(image_id: str) -> list:
    return [{"height": size, "width": size,
             "url": "https://i.scdn.co/image/ab67616d0000%04x%s" % (size, image_id)}
            for size in (640, 300, 64)]


def _track_json(uri: str) -> dict:
    """A full track object, as GET /me/player gives it without a market (about 4 KB)."""
    track_id = uri.rsplit(":", 1)[-1]
    seed = hashlib.sha256(track_id.encode()).hexdigest()
    artist = dict(_links("artist", seed[:22]), name="Mock Artist")
    album = dict(_links("album", seed[22:44]), album_type="album", total_tracks=12,
                 available_markets=list(MARKETS), images=_images(seed[:24]),
                 name="Mock Album", release_date="2019-05-17", release_date_precision="day",
                 artists=[artist])
    return dict(_links("track", track_id), name="Mock Track %s" % track_id[:6],
                album=album, artists=[artist], available_markets=list(MARKETS),
                disc_number=1, duration_ms=TRACK_MS, explicit=False,
                external_ids={"isrc": "USMK1%07d" % (int(seed[:6], 16) % 10**7)},
                is_local=False, popularity=50, preview_url=None, track_number=3)


class MockWebApi:
    """The player's state: the speakers listed and the playback on one of them.

    Not locked by itself: MockSpotify calls it under its lock.
    """

    def __init__(self, accounts: MockAccounts) -> None:
        self._accounts = accounts
        self._devices = [dict(d) for d in DEFAULT_DEVICES]
        self._playback: _Playback | None = None

    def routes(self) -> dict:
        return {
            ("GET", "/v1/me/player"): self._get_player,
            ("PUT", "/v1/me/player"): self._transfer,
            ("GET", "/v1/me/player/devices"): self._get_devices,
            ("PUT", "/v1/me/player/play"): self._play,
            ("PUT", "/v1/me/player/pause"): self._pause,
            ("PUT", "/v1/me/player/volume"): self._volume,
        }

    def check_bearer(self, header: str) -> Reply | None:
        if not header:
            return unauthorized("No token provided")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return api_error(400, "Only valid bearer authentication supported")
        expires = self._accounts.access_expiry(token.strip())
        if expires is None:
            return unauthorized("Invalid access token")
        if expires <= time.monotonic():
            return unauthorized("The access token expired")
        return None

    def playback(self) -> dict | None:
        active = self._active()
        return self._player_json(active) if active else None

    def set_playback(self, device_id: str | None, is_playing: bool,
                     context_uri: str | None = None) -> None:
        """Playback as another Spotify app would leave it; device_id None: nothing active."""
        if device_id is None:
            self._playback = None
            return
        if self._find_device(device_id) is None:
            raise ValueError("unknown device %r" % device_id)
        track = _first_track(context_uri) if context_uri else DEFAULT_TRACK
        self._playback = _Playback(device_id, is_playing, context_uri, track)

    def devices(self) -> list[dict]:
        return [self._device_json(d) for d in self._devices]

    def set_devices(self, devices: list[dict]) -> None:
        """What GET /v1/me/player/devices lists; missing fields take Spotify-like defaults."""
        normalised = []
        for device in devices:
            if not device.get("id"):
                raise ValueError("a device needs an id: %r" % (device,))
            entry = dict(_DEVICE_DEFAULTS, name=device["id"])
            entry.update(device)
            entry.pop("is_active", None)  # follows the playback
            normalised.append(entry)
        self._devices = normalised

    def rename_device_id(self, old: str, new: str) -> None:
        """A speaker that came back with a new id; playback on it follows."""
        device = self._find_device(old)
        if device is None:
            raise ValueError("unknown device %r" % old)
        device["id"] = new
        if self._playback and self._playback.device_id == old:
            self._playback.device_id = new

    def _find_device(self, device_id: str) -> dict | None:
        return next((d for d in self._devices if d["id"] == device_id), None)

    def _active(self) -> _Playback | None:
        """The playback, while its device is still listed (a vanished speaker has none)."""
        playback = self._playback
        if playback and self._find_device(playback.device_id):
            return playback
        return None

    def _device_json(self, device: dict) -> dict:
        active = self._active()
        return dict(device, is_active=bool(active and active.device_id == device["id"]))

    def _player_json(self, playback: _Playback) -> dict:
        now = time.monotonic()
        playing = playback.is_playing
        context = playback.context_uri
        return {
            "device": self._device_json(self._find_device(playback.device_id)),
            "shuffle_state": False, "smart_shuffle": False, "repeat_state": "off",
            "timestamp": int(time.time() * 1000),
            "context": _context_json(context) if context else None,
            "progress_ms": playback.position(now), "is_playing": playing,
            "item": _track_json(playback.track_uri), "currently_playing_type": "track",
            "actions": {"disallows": {"resuming": True} if playing else {"pausing": True}},
        }

    def _target_device(self, requested: str | None) -> tuple[str | None, Reply | None]:
        """The device a command is for: the one named, else the active one."""
        if requested:
            if self._find_device(requested) is None:
                return None, _no_active_device()
            return requested, None
        active = self._active()
        if active is None:
            return None, _no_active_device()
        return active.device_id, None

    def _get_player(self, request: Request) -> Reply:
        active = self._active()
        return Reply(200, self._player_json(active)) if active else Reply(204)

    def _get_devices(self, request: Request) -> Reply:
        return Reply(200, {"devices": [self._device_json(d) for d in self._devices]})

    def _play(self, request: Request) -> Reply:
        device_id, refused = self._target_device(request.query.get("device_id"))
        if refused:
            return refused
        body = request.body if request.body is not None else {}
        if not isinstance(body, dict):
            return api_error(400, "Malformed json")
        context, uris = body.get("context_uri"), body.get("uris")
        if context is not None and not _spotify_uri(
                context, ("album", "artist", "playlist", "show", "user", "collection")):
            return api_error(400, "Invalid context uri")
        if uris is not None and (not isinstance(uris, list) or not uris or not all(
                _spotify_uri(u, ("track", "episode")) for u in uris)):
            return api_error(400, "Invalid track uri")
        now = time.monotonic()
        if context:
            self._playback = _Playback(device_id, True, context, _first_track(context), since=now)
        elif uris:
            self._playback = _Playback(device_id, True, None, uris[0], since=now)
        elif self._playback:  # resume what was playing, wherever it was
            self._playback.device_id = device_id
            self._playback.set_playing(True, now)
        else:
            self._playback = _Playback(device_id, True, None, DEFAULT_TRACK, since=now)
        position = body.get("position_ms")
        if isinstance(position, int) and position >= 0:
            self._playback.progress_ms = position % TRACK_MS
        return Reply(204)

    def _pause(self, request: Request) -> Reply:
        device_id, refused = self._target_device(request.query.get("device_id"))
        if refused:
            return refused
        active = self._active()
        if not active or not active.is_playing or active.device_id != device_id:
            return _restricted()
        active.set_playing(False, time.monotonic())
        return Reply(204)

    def _transfer(self, request: Request) -> Reply:
        body = request.body
        ids = body.get("device_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return api_error(400, "Required field device_ids missing")
        if len(ids) > 1:
            return api_error(400, "Only one device_id allowed")
        if self._find_device(ids[0]) is None:
            return api_error(404, "Device not found")
        play = body.get("play") is True  # false or absent keeps the current state
        if self._playback is None:
            self._playback = _Playback(ids[0], play, None, DEFAULT_TRACK)
            return Reply(204)
        self._playback.device_id = ids[0]
        if play:
            self._playback.set_playing(True, time.monotonic())
        return Reply(204)

    def _volume(self, request: Request) -> Reply:
        raw = request.query.get("volume_percent")
        if raw is None:
            return api_error(400, "Required parameter volume_percent missing")
        try:
            volume = int(raw)
        except ValueError:
            return api_error(400, "Invalid volume_percent")
        if not 0 <= volume <= 100:
            return api_error(400, "volume_percent must be in the range 0 to 100")
        device_id, refused = self._target_device(request.query.get("device_id"))
        if refused:
            return refused
        device = self._find_device(device_id)
        if not device.get("supports_volume", True):
            return api_error(403, "Player command failed: Cannot control device volume",
                             "VOLUME_CONTROL_DISALLOW")
        device["volume_percent"] = volume
        return Reply(204)
