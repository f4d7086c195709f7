# Spotify Web API client: token refresh and the player endpoints we use (the device
# look-up loads on demand: net.spotify_devices). Errors become SpotifyError with a kind
# the app can act on (DESIGN.md §6).
import json

from micropython import const

from core.jsonscan import Scanner
from net.https import HttpError
from spotify_account import (
    NO_DEVICE,
    NOT_REGISTERED,
    OWNER_PREMIUM,
    PREMIUM,
    RATE_LIMITED,
    REAUTH,
    REJECTED,
    SERVER,
    UNAUTHORIZED,
    UNAVAILABLE,
    SpotifyError,
)

_DEFAULT_RETRY_AFTER_S = const(5)
_MAX_RETRY_AFTER_S = const(86400)  # Retry-After of a day has been seen
_ACCEPTED_RETRY_MS = const(5000)  # what Spotify advises after a 202
_EXPIRY_SAFETY_S = const(30)
_STREAMED_MAX = const(65536)  # a streamed body costs no memory, only time

# What the device reads of GET /me/player (core.playback) and of each listed device.
PLAYER_FIELDS = ("is_playing", "device.id", "device.name", "context.uri")


def quote(text):
    # Bytes, not characters: chr() and a str's single characters are interned for good,
    # which would make every character of a refresh token a permanent name.
    out = bytearray()
    for b in text.encode():
        if 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in (45, 46, 95, 126):
            out.append(b)
        else:
            out.extend(b"%%%02X" % b)
    return out.decode()


def _retry_after_s(headers):
    try:
        seconds = int(headers.get("retry-after", ""))
    except ValueError:
        seconds = _DEFAULT_RETRY_AFTER_S
    return max(1, min(seconds, _MAX_RETRY_AFTER_S))


def error_reason(response):
    try:
        err = response.json().get("error")
    except Exception:
        return "", ""
    if isinstance(err, dict):
        return err.get("reason") or "", err.get("message") or ""
    return err or "", ""


def _raise_for(response):
    status = response.status
    if status == 202:
        raise SpotifyError(UNAVAILABLE, "202", _ACCEPTED_RETRY_MS)
    if status < 300:
        return  # a body is never read: play and pause answer 200 with a non-JSON one
    reason, message = error_reason(response)
    if status >= 500:
        raise SpotifyError(SERVER, str(status))
    if status == 401:
        raise SpotifyError(UNAUTHORIZED, message)
    if status == 403:
        if reason == "PREMIUM_REQUIRED":
            raise SpotifyError(PREMIUM, message)
        if not reason:  # a plain-text body, which error_reason cannot read
            text = bytes(response.body[:120]).lower()
            if b"not registered" in text:
                raise SpotifyError(NOT_REGISTERED, "403")
            if b"premium" in text:
                raise SpotifyError(OWNER_PREMIUM, "403")
    if status == 404:
        raise SpotifyError(NO_DEVICE, reason or message)
    raise SpotifyError(REJECTED, "%d %s" % (status, reason or message))


class Spotify:
    def __init__(self, api, accounts, account, on_rotate):
        """api, accounts: net.https clients; account: a spotify_account.Account, which
        holds the tokens; on_rotate(new_refresh_token) must store it atomically before
        returning."""
        self.api = api
        self.accounts = accounts
        self.account = account
        self._on_rotate = on_rotate
        self.calls = 0  # requests made to the Web API (not the token endpoint)

    def _check(self, response):
        if response.status == 429:
            seconds = _retry_after_s(response.headers)
            self.account.rate_limited_until = self.account.utc() + seconds
            raise SpotifyError(RATE_LIMITED, "429", seconds * 1000)
        _raise_for(response)

    def _wait_for_ban(self):
        left = self.account.banned_s()
        if left:
            until = self.account.rate_limited_until
            raise SpotifyError(RATE_LIMITED, "until %d" % until, left * 1000)

    def close(self):
        self.api.close()
        self.accounts.close()

    async def refresh(self):
        """A new access token from the token endpoint; a refused refresh token is REAUTH."""
        self._wait_for_ban()
        account = self.account
        # PKCE's refresh: the client names itself, and no secret is sent or held. The
        # refresh token is bound to that flow (Spotify refuses it with Basic auth).
        body = "grant_type=refresh_token&refresh_token=%s&client_id=%s" % (
            quote(account.refresh_token), quote(account.client_id))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        try:
            response = await self.accounts.request("POST", "/api/token", headers, body.encode())
        except HttpError as e:
            raise SpotifyError(SERVER, "token: " + e.kind)
        finally:
            self.accounts.close()  # rare call: don't hold a second TLS connection
        if response.status == 400:
            reason, _ = error_reason(response)
            raise SpotifyError(REAUTH, reason or "token refused")
        self._check(response)
        try:
            data = response.json()
            token = data["access_token"]
            lifetime = int(data.get("expires_in", 3600))
        except (HttpError, KeyError, ValueError, TypeError, AttributeError):
            raise SpotifyError(SERVER, "token: malformed answer")
        # Since mid-2026 Spotify answers without one: the current token stays good.
        rotated = data.get("refresh_token")
        if rotated and rotated != account.refresh_token:
            self._on_rotate(rotated)
            account.refresh_token = rotated
        account.access_token = token
        account.expires_at = account.utc() + max(0, lifetime - _EXPIRY_SAFETY_S)

    async def call(self, method, target, payload=None, scanner=None):
        """scanner: a 2xx answer's body streams through it instead of being kept."""
        self._wait_for_ban()
        if self.account.token_valid_for() <= 0:
            await self.refresh()
        body = json.dumps(payload).encode() if payload is not None else None
        for attempt in (1, 2):
            headers = {"Authorization": "Bearer " + self.account.access_token}
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
                # Expired or revoked early: refresh once, retry once. One TLS connection
                # at a time: the API's is closed before the token endpoint is dialled.
                self.api.close()
                await self.refresh()
                continue
            self._check(response)
            return response

    @staticmethod
    def _device_query(device_id):
        return "?device_id=" + quote(device_id) if device_id else ""

    async def player(self):
        """The PLAYER_FIELDS of the playback state, or None when nothing plays anywhere."""
        scanner = Scanner(PLAYER_FIELDS)
        response = await self.call("GET", "/v1/me/player?market=from_token", scanner=scanner)
        return scanned(response, scanner)

    async def play(self, device_id, context_uri=None):
        payload = {"context_uri": context_uri} if context_uri else None
        target = "/v1/me/player/play" + self._device_query(device_id)
        await self.call("PUT", target, payload)

    async def transfer(self, device_id):
        await self.call("PUT", "/v1/me/player", {"device_ids": [device_id], "play": True})

    async def pause(self, device_id):
        await self.call("PUT", "/v1/me/player/pause" + self._device_query(device_id))

    async def set_volume(self, device_id, percent):
        query = "?volume_percent=%d" % percent
        if device_id:
            query += "&device_id=" + quote(device_id)
        await self.call("PUT", "/v1/me/player/volume" + query)


def scanned(response, scanner):
    """What the scanner found, or None for an answer without a body."""
    if response.status == 204 or not scanner.size:
        return None
    try:
        return scanner.close()
    except ValueError as e:
        raise SpotifyError(SERVER, "malformed answer: " + str(e))
