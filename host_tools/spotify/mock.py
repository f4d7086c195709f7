"""A stand-in for the Spotify Web API and accounts service over HTTPS.

One origin serves what Spotify splits over two hosts: accounts.spotify.com
(`/authorize`, `/api/token`) and api.spotify.com (`/v1/me/player...`). Status
codes, headers and error bodies follow Spotify's. State lives in memory under
one lock; every request is logged, and faults can be injected per endpoint so
tests can see how a client copes with 401/404/429/5xx, stalls and broken answers.
"""

import base64
import copy
import hashlib
import json
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..common.errors import SpottyError
from ..common.pki import CertificateAuthority
from ..common.serving import serve_in_thread

SCOPES = "user-read-playback-state user-modify-playback-state"
FAULT_KINDS = ("status", "slow", "drop", "garbage", "oversized", "bad_json", "truncated")
TRACK_MS = 210000
DEFAULT_TRACK = "spotify:track:4uLU6hMCjMI75M1A2tKUQC"
CHUNK_SIZE = 128  # small, so that even short answers go out as several chunks
OVERSIZED_BYTES = 1 << 20
MAX_REQUEST_BODY = 1 << 20
HANDSHAKE_TIMEOUT_S = 10.0
CODE_LIFETIME_S = 600.0
_JSON = "application/json; charset=utf-8"


def _device(device_id: str, name: str) -> dict:
    return {"id": device_id, "name": name, "type": "Speaker", "is_active": False,
            "is_private_session": False, "is_restricted": False, "volume_percent": 40,
            "supports_volume": True}


DEFAULT_DEVICES = (_device("dev-bathroom-1", "Bathroom"), _device("dev-kitchen-1", "Kitchen"))
_DEVICE_DEFAULTS = {"type": "Speaker", "is_private_session": False, "is_restricted": False,
                    "volume_percent": 50, "supports_volume": True}


# -- answers --------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    body: object = None  # dict/list: sent as JSON; bytes: sent as they are; None: no body
    headers: dict = field(default_factory=dict)
    content_type: str = _JSON
    truncate: bool = False  # announce the full length, send half of it, then close

    def payload(self) -> bytes:
        if self.body is None or self.status in (204, 304):
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def api_error(status: int, message: str, reason: str | None = None, **headers) -> Reply:
    """The Web API's error shape: {"error": {"status", "message"[, "reason"]}}."""
    error = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return Reply(status, {"error": error}, dict(headers))


def oauth_error(error: str, description: str, status: int = 400) -> Reply:
    """The accounts service's error shape (RFC 6749): {"error", "error_description"}."""
    return Reply(status, {"error": error, "error_description": description})


def _unauthorized(message: str) -> Reply:
    challenge = 'Bearer realm="spotify", error="invalid_token", error_description="%s"' % message
    return api_error(401, message, **{"WWW-Authenticate": challenge})


def _no_active_device() -> Reply:
    return api_error(404, "Player command failed: No active device found", "NO_ACTIVE_DEVICE")


def _restricted() -> Reply:
    return api_error(403, "Player command failed: Restriction violated", "UNKNOWN")


def _error_page(message: str) -> Reply:
    html = "<!DOCTYPE html><html><body><h1>Error</h1><p>%s</p></body></html>" % message
    return Reply(400, html.encode(), content_type="text/html; charset=utf-8")


_FAULT_MESSAGES = {
    400: "Bad request", 401: "The access token expired", 429: "API rate limit exceeded",
    500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable",
}


def _status_fault(rule: dict) -> Reply:
    status = rule["status"]
    reason = rule.get("reason")
    if "body" in rule:
        body = rule["body"]
        reply = Reply(status, body.encode() if isinstance(body, str) else body)
    elif status == 401:
        reply = _unauthorized("The access token expired")
    elif status == 403 and reason == "PREMIUM_REQUIRED":
        reply = api_error(403, "Player command failed: Premium required", reason)
    elif status == 403:
        reply = api_error(403, "Player command failed: Restriction violated", reason or "UNKNOWN")
    elif status == 404:
        reply = api_error(404, "Player command failed: No active device found",
                          reason or "NO_ACTIVE_DEVICE")
    else:
        reply = api_error(status, _FAULT_MESSAGES.get(status, "Error"), reason)
    if status == 429:
        reply.headers["Retry-After"] = "1"
    reply.headers.update(rule.get("headers", {}))
    return reply


def _oversized() -> Reply:
    return Reply(200, {"devices": [], "padding": "x" * OVERSIZED_BYTES})


def _bad_json() -> Reply:
    return Reply(200, b'{"device": {"id": "dev-bathroom-1", "is_playing": tru')


# -- requests -------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-case names
    body: object  # JSON value, dict of form fields, or None
    form: bool = False
    malformed: bool = False  # a JSON body that does not parse

    @property
    def auth(self) -> str:
        scheme = self.headers.get("authorization", "").split(" ", 1)[0].lower()
        return scheme if scheme in ("basic", "bearer") else "none"


def parse_request(method: str, target: str, headers: dict, raw: bytes) -> Request:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    headers = {k.lower(): v for k, v in headers.items()}
    request = Request(method, parts.path, query, headers, None)
    if not raw:
        return request
    content_type = headers.get("content-type", "").lower()
    if "application/x-www-form-urlencoded" in content_type:
        request.form = True
        request.body = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return request
    try:
        request.body = json.loads(raw)
    except ValueError:
        request.malformed = True
    return request


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeError):
        return None
    return (client_id, secret) if sep else None


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge for a code verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _redirect_allowed(uri: str) -> bool:
    # Spotify accepts https, and plain http only to a loopback address literal.
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1")


def _with_query(uri: str, params: dict) -> str:
    fields = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if urlsplit(uri).query else "?") + fields


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


def _track_json(uri: str) -> dict:
    track_id = uri.rsplit(":", 1)[-1]
    return {
        "type": "track", "id": track_id, "uri": uri, "name": "Mock Track %s" % track_id[:6],
        "duration_ms": TRACK_MS, "explicit": False, "is_local": False, "popularity": 50,
        "href": "https://api.spotify.com/v1/tracks/" + track_id,
        "artists": [{"type": "artist", "name": "Mock Artist", "uri": "spotify:artist:mock"}],
        "album": {"type": "album", "name": "Mock Album", "uri": "spotify:album:mock"},
    }


@dataclass
class _Grant:
    redirect_uri: str
    challenge: str | None
    scope: str
    expires: float


# -- the mock -------------------------------------------------------------------------------

class MockSpotify:
    """Spotify's accounts service and player API on https://127.0.0.1:PORT.

    Use as a context manager; `url` and `ca` (trust `ca.cert_der`) tell a client where
    to go. `requests()` is the request log; `inject()` plans faults.
    """

    def __init__(self, client_id: str = "spotty-test-client", client_secret: str | None = None,
                 refresh_token: str = "refresh-0", rotate_refresh_tokens: bool = False,
                 access_token_ttl: int = 3600, keepalive: bool = True, host: str = "127.0.0.1",
                 port: int = 0, chunked: bool = False, idle_timeout: float = 60.0) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.access_token_ttl = access_token_ttl
        self.keepalive = keepalive
        self.chunked = chunked
        self.idle_timeout = idle_timeout
        self.host = host
        self.port = port
        self.url = ""
        self.ca = CertificateAuthority.create("SpottyPottySense mock Spotify CA")
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._log: list[dict] = []
        self._rules: list[dict] = []
        self._devices = [dict(d) for d in DEFAULT_DEVICES]
        self._playback: _Playback | None = None
        self._refresh_token = refresh_token
        self._revoked = False
        self._scope = SCOPES
        self._access: dict[str, float] = {}  # access token -> monotonic expiry
        self._codes: dict[str, _Grant] = {}
        self._serial = 0
        self._connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: str | None = None

    # -- lifecycle

    def __enter__(self) -> "MockSpotify":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._stopping.clear()
        self._tmp = tempfile.mkdtemp(prefix="mock-spotify-")
        try:
            context = self._tls_context(Path(self._tmp))
            self._server = _Server((self.host, self.port), self, context)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.port, self.url, self._thread = serve_in_thread(self._server, self.host, "mock-spotify")

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" faults
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._thread.join()
            self._server = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _tls_context(self, directory: Path) -> ssl.SSLContext:
        names = ["localhost", "127.0.0.1"]
        if self.host not in names + ["", "0.0.0.0"]:
            names.append(self.host)  # e.g. a LAN address a real board connects to
        self.ca.issue_server(tuple(names)).write(directory, "server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "server.pem", directory / "server.key.pem")
        return context

    def close_connections(self) -> None:
        """Drop every open connection, as a server does to idle keep-alive connections."""
        if self._server is not None:
            self._server.close_connections()

    # -- inspection and control (thread-safe)

    @property
    def refresh_token(self) -> str:
        with self._lock:
            return self._refresh_token

    @property
    def connections(self) -> int:
        """TLS connections accepted so far (handshake completed)."""
        with self._lock:
            return self._connections

    def requests(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def playback(self) -> dict | None:
        with self._lock:
            active = self._active()
            return self._player_json(active) if active else None

    def set_playback(self, device_id: str | None, is_playing: bool,
                     context_uri: str | None = None) -> None:
        """Playback as another Spotify app would leave it; device_id None: nothing active."""
        with self._lock:
            if device_id is None:
                self._playback = None
                return
            if self._find_device(device_id) is None:
                raise ValueError("unknown device %r" % device_id)
            track = _first_track(context_uri) if context_uri else DEFAULT_TRACK
            self._playback = _Playback(device_id, is_playing, context_uri, track)

    def devices(self) -> list[dict]:
        with self._lock:
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
        with self._lock:
            self._devices = normalised

    def rename_device_id(self, old: str, new: str) -> None:
        """A speaker that came back with a new id; playback on it follows."""
        with self._lock:
            device = self._find_device(old)
            if device is None:
                raise ValueError("unknown device %r" % old)
            device["id"] = new
            if self._playback and self._playback.device_id == old:
                self._playback.device_id = new

    def inject(self, rule: dict) -> None:
        """Plan a fault for the next `times` requests to rule["match"] ("PUT /v1/me/player")."""
        method, _, path = rule.get("match", "").partition(" ")
        if not method or not path.startswith("/") or "?" in path:
            raise ValueError("match must be 'METHOD /path' without a query: %r" % rule)
        if rule.get("kind") not in FAULT_KINDS:
            raise ValueError("kind must be one of %s: %r" % (", ".join(FAULT_KINDS), rule))
        if rule["kind"] == "status" and not isinstance(rule.get("status"), int):
            raise ValueError("a status fault needs an int status: %r" % rule)
        times = rule.get("times", 1)
        if not isinstance(times, int) or times < 1:
            raise ValueError("times must be a positive int: %r" % rule)
        with self._lock:
            self._rules.append(dict(rule, method=method.upper(), path=path, times=times))

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = dict.fromkeys(self._access, 0.0)

    def revoke_refresh_token(self) -> None:
        with self._lock:
            self._revoked = True

    def accept_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh_token = token
            self._revoked = False

    # -- called by the HTTP handler

    def _connected(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def _receive(self, request: Request, conn: int) -> tuple[dict, dict | None]:
        """Log a request and take the fault planned for it, if any."""
        with self._lock:
            rule = self._take_fault(request.method, request.path)
            entry = {
                "t": time.monotonic(), "method": request.method, "path": request.path,
                "query": dict(request.query), "body": copy.deepcopy(request.body),
                "status": None, "auth": request.auth, "fault": rule["kind"] if rule else None,
                "conn": conn,
            }
            self._log.append(entry)
            return entry, rule

    def _take_fault(self, method: str, path: str) -> dict | None:
        for rule in self._rules:
            if rule["method"] == method and rule["path"] == path:
                rule["times"] -= 1
                if rule["times"] == 0:
                    self._rules.remove(rule)
                return rule
        return None

    def _answered(self, entry: dict, status: int) -> None:
        with self._lock:
            entry["status"] = status

    def _respond(self, request: Request) -> Reply:
        with self._lock:
            route = _ROUTES.get((request.method, request.path))
            if route is None:
                known = any(path == request.path for _, path in _ROUTES)
                if known:
                    return api_error(405, "Method not allowed")
                return api_error(404, "Service not found")
            if request.path.startswith("/v1/"):
                refused = self._check_bearer(request.headers.get("authorization", ""))
                if refused:
                    return refused
                if request.malformed:
                    return api_error(400, "Malformed json")
            return route(self, request)

    # -- accounts service

    def _authorize(self, request: Request) -> Reply:
        q = request.query
        if q.get("client_id") != self.client_id:
            return _error_page("INVALID_CLIENT: Invalid client")
        redirect = q.get("redirect_uri", "")
        if not redirect:
            return _error_page("INVALID_CLIENT: Invalid redirect URI")
        if not _redirect_allowed(redirect):
            return _error_page("INVALID_CLIENT: Insecure redirect URI")
        state = q.get("state")
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method")
        error = None
        if q.get("response_type") != "code":
            error = "unsupported_response_type"
        elif (challenge or method) and (method != "S256" or not challenge):
            error = "invalid_request"
        if error:
            return Reply(302, headers={"Location": _with_query(redirect, {"error": error,
                                                                          "state": state})})
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(redirect, challenge, q.get("scope") or SCOPES,
                                   time.monotonic() + CODE_LIFETIME_S)
        location = _with_query(redirect, {"code": code, "state": state})
        return Reply(302, headers={"Location": location})

    def _token(self, request: Request) -> Reply:
        form = request.body if request.form else {}
        grant = form.get("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            if not grant:
                return oauth_error("unsupported_grant_type", "grant_type parameter is missing")
            return oauth_error("unsupported_grant_type", "grant_type %s is not supported" % grant)
        pending = self._codes.get(form.get("code", "")) if grant == "authorization_code" else None
        refused = self._check_client(request, form,
                                     secret_needed=not (pending and pending.challenge))
        if refused:
            return refused
        if grant == "refresh_token":
            return self._refresh_grant(form)
        return self._code_grant(form)

    def _check_client(self, request: Request, form: dict, secret_needed: bool) -> Reply | None:
        basic = _basic_credentials(request.headers.get("authorization", ""))
        client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id:
            return oauth_error("invalid_client", "Invalid client")
        if secret is None and (self.client_secret is None or not secret_needed):
            return None  # a public (PKCE) client identifies itself by its id alone
        if secret != self.client_secret:
            return oauth_error("invalid_client", "Invalid client secret")
        return None

    def _refresh_grant(self, form: dict) -> Reply:
        token = form.get("refresh_token")
        if not token:
            return oauth_error("invalid_request", "refresh_token must be supplied")
        if token != self._refresh_token:
            return oauth_error("invalid_grant", "Invalid refresh token")
        if self._revoked:
            return oauth_error("invalid_grant", "Refresh token revoked")
        answer = self._issue_access_token()
        if self.rotate_refresh_tokens:
            self._refresh_token = answer["refresh_token"] = self._new_token("refresh")
        return Reply(200, answer)

    def _code_grant(self, form: dict) -> Reply:
        grant = self._codes.pop(form.get("code", ""), None)  # a code is good for one try
        if grant is None or grant.expires < time.monotonic():
            return oauth_error("invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return oauth_error("invalid_grant", "Invalid redirect URI")
        if grant.challenge and s256(form.get("code_verifier", "")) != grant.challenge:
            return oauth_error("invalid_grant", "code_verifier was incorrect")
        self._scope = grant.scope
        answer = self._issue_access_token()
        self._refresh_token = answer["refresh_token"] = self._new_token("refresh")
        self._revoked = False
        return Reply(200, answer)

    def _issue_access_token(self) -> dict:
        token = self._new_token("access")
        self._access[token] = time.monotonic() + self.access_token_ttl
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": self.access_token_ttl, "scope": self._scope}

    def _new_token(self, kind: str) -> str:
        self._serial += 1
        return "%s-%d-%s" % (kind, self._serial, secrets.token_hex(8))

    def _check_bearer(self, header: str) -> Reply | None:
        if not header:
            return _unauthorized("No token provided")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return api_error(400, "Only valid bearer authentication supported")
        expires = self._access.get(token.strip())
        if expires is None:
            return _unauthorized("Invalid access token")
        if expires <= time.monotonic():
            return _unauthorized("The access token expired")
        return None

    # -- player

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


_ROUTES: dict[tuple[str, str], Callable[[MockSpotify, Request], Reply]] = {
    ("GET", "/authorize"): MockSpotify._authorize,
    ("POST", "/api/token"): MockSpotify._token,
    ("GET", "/v1/me/player"): MockSpotify._get_player,
    ("PUT", "/v1/me/player"): MockSpotify._transfer,
    ("GET", "/v1/me/player/devices"): MockSpotify._get_devices,
    ("PUT", "/v1/me/player/play"): MockSpotify._play,
    ("PUT", "/v1/me/player/pause"): MockSpotify._pause,
    ("PUT", "/v1/me/player/volume"): MockSpotify._volume,
}


# -- HTTP over TLS --------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, mock: MockSpotify, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.mock = mock
        self.context = context
        self._open: dict[ssl.SSLSocket, int] = {}
        self._open_lock = threading.Lock()

    def finish_request(self, request, client_address) -> None:
        # The handshake runs in the connection's own thread, so a stalled or refused
        # handshake never holds up accepting other connections.
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return  # e.g. the client did not trust our CA: no HTTP request ever arrived
        with self._open_lock:
            self._open[conn] = self.mock._connected()
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._open_lock:
                self._open.pop(conn, None)
            conn.close()

    def connection_number(self, conn) -> int:
        with self._open_lock:
            return self._open.get(conn, 0)

    def close_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                # Below the TLS layer: the connection's thread may be inside a TLS read.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        pass  # clients vanishing mid-answer are part of the tests; route bugs answer 500


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-spotify"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.mock.idle_timeout
        super().setup()

    def log_message(self, format, *args) -> None:
        pass  # the mock's request log is the record

    def do_GET(self) -> None:
        try:
            self._serve()
        except OSError:
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        mock = self.server.mock
        raw = self._read_body()
        if raw is None:
            return
        request = parse_request(self.command, self.path, dict(self.headers.items()), raw)
        entry, rule = mock._receive(request, self.server.connection_number(self.connection))
        kind = rule["kind"] if rule else None
        if kind in ("drop", "garbage"):
            if kind == "garbage":
                self.wfile.write(b"\x15\x03\x03\x00\x02garbage, not HTTP\x00\xff\r\n\r\n")
            self.close_connection = True
            return
        if kind == "slow":
            mock._stopping.wait(rule.get("delay", 1.0))
        reply = self._reply_for(kind, rule, request)
        mock._answered(entry, reply.status)
        self._send(reply)

    def _reply_for(self, kind: str | None, rule: dict | None, request: Request) -> Reply:
        if kind == "status":
            return _status_fault(rule)
        if kind == "oversized":
            return _oversized()
        if kind == "bad_json":
            return _bad_json()
        if kind == "truncated":  # a faulted request changes nothing: answer from a snapshot
            return Reply(200, {"devices": self.server.mock.devices()}, truncate=True)
        try:
            return self.server.mock._respond(request)
        except Exception:
            traceback.print_exc()  # a bug in the mock: say so loudly, answer like Spotify would
            return api_error(500, "Server error.")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit() or int(length) > MAX_REQUEST_BODY:
            self.send_error(413 if length.isdigit() else 400)
            self.close_connection = True
            return None
        return self.rfile.read(int(length))

    def _read_chunked_body(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                self.send_error(400, "bad chunk size")
                self.close_connection = True
                return None
            total += size
            if total > MAX_REQUEST_BODY:
                self.send_error(413)
                self.close_connection = True
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        framed = reply.status not in (204, 304)
        chunked = bool(framed and payload and self.server.mock.chunked and not reply.truncate)
        if payload:
            self.send_header("Content-Type", reply.content_type)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif framed:
            self.send_header("Content-Length", str(len(payload)))
        if reply.truncate or not self.server.mock.keepalive:
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if reply.truncate:
            self.wfile.write(payload[: len(payload) // 2])
        elif chunked:
            self.wfile.write(_chunks(payload))
        elif payload:
            self.wfile.write(payload)


def _chunks(payload: bytes) -> bytes:
    out = []
    for start in range(0, len(payload), CHUNK_SIZE):
        piece = payload[start:start + CHUNK_SIZE]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


# -- `spotty mock-spotify` ------------------------------------------------------------------

def serve(host: str, port: int, state_dir: Path, announce: Callable[[dict], None]) -> None:
    """Serve the mock until KeyboardInterrupt; its CA goes to state_dir/ca.pem and ca.der."""
    try:
        mock = MockSpotify(host=host, port=port)
        mock.start()
    except OSError as e:
        raise SpottyError("cannot listen on %s:%d: %s" % (host, port, e.strerror or e)) from e
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        ca_pem = state_dir / "ca.pem"
        ca_pem.write_bytes(mock.ca.cert_pem)
        (state_dir / "ca.der").write_bytes(mock.ca.cert_der)
        announce({"url": mock.url, "ca": str(ca_pem), "client_id": mock.client_id,
                  "hint": "export SPOTIFY_REFRESH_TOKEN=%s" % mock.refresh_token})
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        mock.stop()
