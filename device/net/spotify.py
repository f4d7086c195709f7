# Spotify Web API client: token refresh and the player endpoints we use.
# Errors become SpotifyError with a kind the app can act on (DESIGN.md §6).
import json
from binascii import b2a_base64

from micropython import const

from core.jsonscan import Scanner
from core.playback import addressable
from net.https import HttpError

RATE_LIMITED = "rate_limited"
SERVER = "server_error"
NO_DEVICE = "no_active_device"
DEVICE_ASLEEP = "device_asleep"
PREMIUM = "premium_required"
REAUTH = "needs_reauth"
REJECTED = "rejected"
UNAUTHORIZED = "unauthorized"
FATAL = (PREMIUM, REAUTH)  # retrying cannot help: the owner must act

_DEFAULT_RETRY_AFTER_S = const(5)
_MAX_RETRY_AFTER_S = const(3600)
_EXPIRY_SAFETY_S = const(30)
_STREAMED_MAX = const(65536)  # a streamed body costs no memory, only time

# What the device reads of GET /me/player (core.playback) and of each listed device.
PLAYER_FIELDS = ("is_playing", "device.id", "device.name", "context.uri")
_DEVICES = "devices.[]"
_DEVICE_FIELDS = ("devices.[].id", "devices.[].name", "devices.[].is_restricted")


class SpotifyError(Exception):
    def __init__(self, kind, detail="", retry_after_ms=None):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.retry_after_ms = retry_after_ms


def _quote(text):
    # Bytes, not characters: chr() and a str's single characters are interned for good,
    # which would make every character of a refresh token a permanent name.
    out = bytearray()
    for b in text.encode():
        if 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in (45, 46, 95, 126):
            out.append(b)
        else:
            out.extend(b"%%%02X" % b)
    return out.decode()


def _retry_after_ms(headers):
    try:
        seconds = int(headers.get("retry-after", ""))
    except ValueError:
        seconds = _DEFAULT_RETRY_AFTER_S
    return max(1, min(seconds, _MAX_RETRY_AFTER_S)) * 1000


def _error_reason(response):
    try:
        err = response.json().get("error")
    except Exception:
        return "", ""
    if isinstance(err, dict):
        return err.get("reason") or "", err.get("message") or ""
    return err or "", ""


def _raise_for(response):
    status = response.status
    if status < 300:
        return
    reason, message = _error_reason(response)
    if status == 429:
        raise SpotifyError(RATE_LIMITED, "429", _retry_after_ms(response.headers))
    if status >= 500:
        raise SpotifyError(SERVER, str(status))
    if status == 401:
        raise SpotifyError(UNAUTHORIZED, message)
    if status == 403 and reason == "PREMIUM_REQUIRED":
        raise SpotifyError(PREMIUM, message)
    if status == 404:
        raise SpotifyError(NO_DEVICE, reason or message)
    raise SpotifyError(REJECTED, "%d %s" % (status, reason or message))


class Spotify:
    def __init__(self, api, accounts, client_id, client_secret, refresh_token, on_rotate):
        """on_rotate(new_refresh_token) must store it atomically before returning."""
        self.api = api
        self.accounts = accounts
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._on_rotate = on_rotate
        self._access_token = None
        self._expires_at = 0
        self.calls = 0  # requests made to the Web API (not the token endpoint)
        self.refreshes = 0

    def set_refresh_token(self, token):
        self._refresh_token = token
        self._access_token = None

    def token_valid_for(self, now):
        """Seconds the access token has left. Every `now` here is UTC seconds: a tick kept
        for the token's hour would compare the wrong way round after days without a call."""
        if self._access_token is None:
            return -1
        return self._expires_at - now

    async def refresh(self, now):
        body = "grant_type=refresh_token&refresh_token=" + _quote(self._refresh_token)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._client_secret:
            pair = (self._client_id + ":" + self._client_secret).encode()
            headers["Authorization"] = "Basic " + b2a_base64(pair).decode().strip()
        else:
            body += "&client_id=" + _quote(self._client_id)
        try:
            response = await self.accounts.request("POST", "/api/token", headers, body.encode())
        except HttpError as e:
            raise SpotifyError(SERVER, "token: " + e.kind)
        finally:
            self.accounts.close()  # rare call: don't hold a second TLS connection
        self.refreshes += 1
        if response.status == 400:
            reason, _ = _error_reason(response)
            raise SpotifyError(REAUTH, reason or "token refused")
        _raise_for(response)
        try:
            data = response.json()
            token = data["access_token"]
            lifetime = int(data.get("expires_in", 3600))
        except (HttpError, KeyError, ValueError, TypeError, AttributeError):
            raise SpotifyError(SERVER, "token: malformed answer")
        rotated = data.get("refresh_token")
        if rotated and rotated != self._refresh_token:
            self._on_rotate(rotated)
            self._refresh_token = rotated
        self._access_token = token
        self._expires_at = now + max(0, lifetime - _EXPIRY_SAFETY_S)

    async def _call(self, method, target, now, payload=None, scanner=None):
        """scanner: a 2xx answer's body streams through it instead of being kept."""
        if self.token_valid_for(now) <= 0:
            await self.refresh(now)
        body = json.dumps(payload).encode() if payload is not None else None
        for attempt in (1, 2):
            headers = {"Authorization": "Bearer " + self._access_token}
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                self.calls += 1
                response = await self.api.request(
                    method, target, headers, body, scanner and scanner.feed, _STREAMED_MAX)
            except HttpError as e:
                raise SpotifyError(SERVER, e.kind)
            except ValueError as e:  # the scanner's: not JSON
                raise SpotifyError(SERVER, "malformed answer: " + str(e))
            if response.status == 401 and attempt == 1:
                await self.refresh(now)  # expired or revoked early: refresh once, retry once
                continue
            _raise_for(response)
            return response

    @staticmethod
    def _device_query(device_id):
        return "?device_id=" + _quote(device_id) if device_id else ""

    async def player(self, now):
        """The PLAYER_FIELDS of the playback state, or None when nothing plays anywhere."""
        scanner = Scanner(PLAYER_FIELDS)
        response = await self._call("GET", "/v1/me/player?market=from_token", now,
                                    scanner=scanner)
        return self._scanned(response, scanner)

    async def find_device(self, now, wanted):
        """The configured speaker ({"id", "name", ...}) if Spotify lists it and it can be
        addressed, else None."""
        matches = []
        scanner = Scanner(_DEVICE_FIELDS, _DEVICES,
                          lambda device: addressable(device, wanted) and matches.append(device))
        response = await self._call("GET", "/v1/me/player/devices", now, scanner=scanner)
        if self._scanned(response, scanner) is None:
            raise SpotifyError(SERVER, "devices: no answer")
        return matches[0] if matches else None

    async def play(self, now, device_id, context_uri=None):
        payload = {"context_uri": context_uri} if context_uri else None
        target = "/v1/me/player/play" + self._device_query(device_id)
        await self._call("PUT", target, now, payload)

    async def transfer(self, now, device_id):
        await self._call("PUT", "/v1/me/player", now, {"device_ids": [device_id], "play": True})

    async def pause(self, now, device_id):
        await self._call("PUT", "/v1/me/player/pause" + self._device_query(device_id), now)

    async def set_volume(self, now, device_id, percent):
        query = "?volume_percent=%d" % percent
        if device_id:
            query += "&device_id=" + _quote(device_id)
        await self._call("PUT", "/v1/me/player/volume" + query, now)

    @staticmethod
    def _scanned(response, scanner):
        """What the scanner found, or None for an answer without a body."""
        if response.status == 204 or not scanner.size:
            return None
        try:
            return scanner.close()
        except ValueError as e:
            raise SpotifyError(SERVER, "malformed answer: " + str(e))
