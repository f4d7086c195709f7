"""A stand-in for the Spotify Web API and accounts service over HTTPS.

One origin serves what Spotify splits over two hosts: accounts.spotify.com
(`/authorize`, `/api/token`: mock_accounts.py) and api.spotify.com (`/v1/me/player...`:
mock_web_api.py); the HTTP over TLS is mock_http.py. Status codes, headers and error
bodies follow Spotify's. State lives in memory under one lock; every request is logged,
and faults can be injected per endpoint so tests can see how a client copes with
401/404/429/5xx, stalls and broken answers.
"""

import copy
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ..common.errors import SpottyError
from ..common.pki import CertificateAuthority, server_names
from ..common.serving import HttpsServing
from .mock_accounts import PKCE, MockAccounts
from .mock_http import MockServer, Reply, Request, api_error
from .mock_web_api import MockWebApi, unauthorized

FAULT_KINDS = ("status", "slow", "drop", "garbage", "oversized", "bad_json", "truncated", "body")
OVERSIZED_BYTES = 1 << 20


# -- faults ---------------------------------------------------------------------------------

_FAULT_MESSAGES = {
    400: "Bad request", 401: "The access token expired", 429: "API rate limit exceeded",
    500: "Server error.", 502: "Bad gateway.", 503: "Service unavailable",
}


def _status_fault(rule: dict) -> Reply:
    status = rule["status"]
    reason = rule.get("reason")
    if status == 202 and "body" not in rule:
        # "Accepted": the device was not available and the command did not run.
        reply = Reply(202, b"")
    elif "body" in rule:
        body = rule["body"]
        reply = Reply(status, body.encode() if isinstance(body, str) else body)
        if "content_type" in rule:  # e.g. the plain text of some 403s
            reply.content_type = rule["content_type"]
    elif status == 401:
        reply = unauthorized("The access token expired")
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


# -- the mock -------------------------------------------------------------------------------

class MockSpotify:
    """Spotify's accounts service and player API on https://127.0.0.1:PORT.

    Use as a context manager; `url` and `ca` (trust `ca.cert_der`) tell a client where
    to go. `requests()` is the request log; `inject()` plans faults. `client_secret` is
    the app's secret (None: any secret is wrong); `refresh_token` was issued by
    `refresh_token_flow` (mock_accounts.PKCE, or SECRET: an exchange with the secret).
    """

    def __init__(self, client_id: str = "spotty-test-client", client_secret: str | None = None,
                 refresh_token: str = "refresh-0", rotate_refresh_tokens: bool = False,
                 access_token_ttl: int = 3600, keepalive: bool = True, host: str = "127.0.0.1",
                 port: int = 0, chunked: bool = False, idle_timeout: float = 60.0,
                 refresh_token_flow: str = PKCE, tls_delay_ms: int = 0) -> None:
        self.keepalive = keepalive
        # Each new TLS handshake takes this much longer: an ESP32 spends about a second on
        # one, loopback a few ms (make bench models the board with it).
        self.tls_delay_ms = tls_delay_ms
        self.chunked = chunked
        self.idle_timeout = idle_timeout
        self.host = host
        self.port = port
        self.url = ""
        self.ca = CertificateAuthority.create("SpottyPottySense mock Spotify CA",
                                              server_names(host))
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._log: list[dict] = []
        self._rules: list[dict] = []
        self._accounts = MockAccounts(client_id, client_secret, refresh_token,
                                      rotate_refresh_tokens, access_token_ttl,
                                      refresh_token_flow)
        self._web_api = MockWebApi(self._accounts)
        self._routes = {**self._accounts.routes(), **self._web_api.routes()}
        self._connections = 0
        self._serving: HttpsServing | None = None

    # -- lifecycle

    def __enter__(self) -> "MockSpotify":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._stopping.clear()
        self._serving = HttpsServing(lambda address, context: MockServer(address, self, context),
                                     self.host, self.port, self.ca, server_names(self.host),
                                     "mock-spotify")
        self.port, self.url = self._serving.port, self._serving.url

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" faults
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def close_connections(self) -> None:
        """Drop every open connection, as a server does to idle keep-alive connections."""
        if self._serving is not None:
            self._serving.server.close_connections()

    # -- inspection and control (thread-safe)

    @property
    def client_id(self) -> str:
        return self._accounts.client_id

    @property
    def refresh_token(self) -> str:
        with self._lock:
            return self._accounts.refresh_token

    @property
    def connections(self) -> int:
        """TLS connections accepted so far (handshake completed)."""
        with self._lock:
            return self._connections

    def requests(self) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._log)

    def clear_log(self, before: float | None = None) -> None:
        """Forget the requests logged so far, or those received before time.monotonic()
        `before`."""
        with self._lock:
            self._log[:] = [] if before is None else [r for r in self._log if r["t"] >= before]

    def playback(self) -> dict | None:
        with self._lock:
            return self._web_api.playback()

    def set_playback(self, device_id: str | None, is_playing: bool,
                     context_uri: str | None = None) -> None:
        """Playback as another Spotify app would leave it; device_id None: nothing active."""
        with self._lock:
            self._web_api.set_playback(device_id, is_playing, context_uri)

    def devices(self) -> list[dict]:
        with self._lock:
            return self._web_api.devices()

    def set_devices(self, devices: list[dict]) -> None:
        """What GET /v1/me/player/devices lists; missing fields take Spotify-like defaults."""
        with self._lock:
            self._web_api.set_devices(devices)

    def rename_device_id(self, old: str, new: str) -> None:
        """A speaker that came back with a new id; playback on it follows."""
        with self._lock:
            self._web_api.rename_device_id(old, new)

    def inject(self, rule: dict) -> None:
        """Plan a fault for the next `times` requests to rule["match"] ("PUT /v1/me/player")."""
        method, _, path = rule.get("match", "").partition(" ")
        if not method or not path.startswith("/") or "?" in path:
            raise ValueError("match must be 'METHOD /path' without a query: %r" % rule)
        if rule.get("kind") not in FAULT_KINDS:
            raise ValueError("kind must be one of %s: %r" % (", ".join(FAULT_KINDS), rule))
        if rule["kind"] == "status" and not isinstance(rule.get("status"), int):
            raise ValueError("a status fault needs an int status: %r" % rule)
        if rule["kind"] == "body" and not isinstance(rule.get("body"), str):
            raise ValueError("a body fault needs the body as text: %r" % rule)
        times = rule.get("times", 1)
        if not isinstance(times, int) or times < 1:
            raise ValueError("times must be a positive int: %r" % rule)
        with self._lock:
            self._rules.append(dict(rule, method=method.upper(), path=path, times=times))

    def rotate_refresh_tokens(self, on: bool = True) -> None:
        """Whether each refresh answers with a new refresh token, the old one then refused."""
        with self._lock:
            self._accounts.rotate_refresh_tokens = on

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._accounts.expire_access_tokens()

    def revoke_refresh_token(self) -> None:
        with self._lock:
            self._accounts.revoke_refresh_token()

    def accept_refresh_token(self, token: str, flow: str = PKCE) -> None:
        """From now on `token` is the user's refresh token, issued by `flow` (PKCE or
        SECRET: the exchange authenticated with the app's secret)."""
        with self._lock:
            self._accounts.accept_refresh_token(token, flow)

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

    def _reply_for(self, kind: str | None, rule: dict | None, request: Request) -> Reply:
        if kind == "status":
            return _status_fault(rule)
        if kind == "oversized":
            return _oversized()
        if kind == "bad_json":
            return _bad_json()
        if kind == "truncated":  # a faulted request changes nothing: answer from a snapshot
            return Reply(200, {"devices": self.devices()}, truncate=True)
        try:
            reply = self._respond(request)
        except Exception:
            traceback.print_exc()  # a bug in the mock: say so loudly, answer like Spotify would
            return api_error(500, "Server error.")
        if kind == "body" and reply.status < 300:
            # The command runs, and the answer carries what Spotify has sent since 2024
            # for play and pause: 200 and a body that is not JSON, under a JSON type.
            reply = Reply(rule.get("status", 200), rule["body"].encode())
        return reply

    def _respond(self, request: Request) -> Reply:
        with self._lock:
            route = self._routes.get((request.method, request.path))
            if route is None:
                known = any(path == request.path for _, path in self._routes)
                if known:
                    return api_error(405, "Method not allowed")
                return api_error(404, "Service not found")
            if request.path.startswith("/v1/"):
                refused = self._web_api.check_bearer(request.headers.get("authorization", ""))
                if refused:
                    return refused
                if request.malformed:
                    return api_error(400, "Malformed json")
            return route(request)


# -- `spotty mock-spotify` ------------------------------------------------------------------

def serve(host: str, port: int, state_dir: Path, announce: Callable[[dict], None],
          tls_delay_ms: int = 0) -> None:
    """Serve the mock until KeyboardInterrupt; its CA goes to state_dir/ca.pem and ca.der."""
    try:
        mock = MockSpotify(host=host, port=port, tls_delay_ms=tls_delay_ms)
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
