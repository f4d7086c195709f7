"""Log in to Spotify on the host (Authorization Code with PKCE) and hand the token over.

PKCE only: no client secret is used, here or on the device. A secret on a board in a
bathroom is a secret anyone with a USB cable can read.

The browser goes to the accounts service's /authorize; Spotify sends it back to a
one-shot server on http://127.0.0.1:PORT/callback with a code, which is exchanged for a
refresh token at /api/token. Spotify compares the redirect URI with the ones registered
for the app letter by letter, and since 2025 accepts plain http only for a loopback IP
literal: 127.0.0.1, never "localhost".

The refresh token is kept at ~/.config/spotty/spotify-token.json (0600) for
`spotty provision`, or pushed to a running device over AWS IoT: when the six-month token
has expired, no cable is needed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..common.errors import DeviceOffline, SpottyError, UsageError
from ..common.private_files import user_dir, write_private

DEFAULT_PORT = 8888
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"
SCOPES = "user-read-playback-state user-modify-playback-state"
CALLBACK_PATH = "/callback"
CLIENT_SECRET_ENV = "SPOTIFY_CLIENT_SECRET"  # older versions read it; now refused
LOGIN_TIMEOUT_S = 300.0
HTTP_TIMEOUT_S = 20.0
MAX_ANSWER_BYTES = 64 * 1024
TOKEN_TOPIC = "spotty/%s/token"  # the device's own topic: not the shadow, which is readable


def refuse_client_secret(environ: Mapping[str, str] = os.environ) -> None:
    """Stop where a client secret was once taken: none is used any more, and one set in
    the environment should go (it would otherwise be forgotten there)."""
    if environ.get(CLIENT_SECRET_ENV):
        raise UsageError(
            "%s is set, but SpottyPottySense uses no client secret: the login is "
            "Authorization Code with PKCE, and nothing secret of your Spotify app goes to "
            "the board (anyone with a USB cable could read it there). Unset it "
            "(`unset %s`) and run the command again" % (CLIENT_SECRET_ENV, CLIENT_SECRET_ENV))


def default_token_file() -> Path:
    return user_dir() / "spotify-token.json"


# -- PKCE (RFC 7636) ------------------------------------------------------------------


def new_code_verifier() -> str:
    """86 characters of [A-Za-z0-9_-]: 64 random bytes, inside PKCE's 43..128."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def redirect_uri(port: int) -> str:
    return "http://127.0.0.1:%d%s" % (port, CALLBACK_PATH)


def authorize_url(
    accounts_url: str, client_id: str, redirect: str, state: str, challenge: str,
    scope: str = SCOPES,
) -> str:
    query = urlencode({
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect,
        "state": state,
        "scope": scope,
        "code_challenge_method": "S256",
        "code_challenge": challenge,
    })
    return "%s/authorize?%s" % (accounts_url.rstrip("/"), query)


# -- the loopback redirect server -----------------------------------------------------

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>SpottyPottySense</title>
</head><body><h1>%s</h1><p>%s</p></body></html>"""


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    timeout = 10  # an idle connection gives up its thread

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._page(404, "Not found", "This server only takes Spotify's answer.")
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if "error" in params or params.get("state") != self.server.state:
            self._page(400, "Spotify login failed",
                       "Go back to the terminal to see why. You can close this tab.")
        else:
            self._page(200, "Spotify login done",
                       "SpottyPottySense has its token. You can close this tab.")
        self.server.answer(params)

    def _page(self, status: int, title: str, text: str) -> None:
        body = (_PAGE % (html.escape(title), html.escape(text))).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # the request line carries the authorization code


class _CallbackServer(ThreadingHTTPServer):
    # Threads: browsers open speculative connections that may never send a request,
    # and one of those must not hold up the real answer.
    daemon_threads = True

    def __init__(self, port: int, state: str):
        super().__init__(("127.0.0.1", port), _CallbackHandler)
        self.state = state
        self.params: dict[str, str] | None = None
        self.arrived = threading.Event()
        self._lock = threading.Lock()

    def answer(self, params: dict[str, str]) -> None:
        with self._lock:
            if not self.arrived.is_set():  # the first answer counts; a reload changes nothing
                self.params = params
                self.arrived.set()


class LoopbackReceiver:
    """Serves http://127.0.0.1:PORT/callback until the browser brings Spotify's answer."""

    def __init__(self, port: int, state: str):
        try:
            self._server = _CallbackServer(port, state)
        except OSError as e:
            raise SpottyError(
                "cannot listen on 127.0.0.1:%d (%s): choose another --port, and register "
                "http://127.0.0.1:PORT/callback for your app on developer.spotify.com"
                % (port, e.strerror or e)) from e
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="spotify-callback", daemon=True
        )

    @property
    def redirect_uri(self) -> str:
        return redirect_uri(self.port)

    def __enter__(self) -> LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait(self, timeout_s: float) -> dict[str, str]:
        if not self._server.arrived.wait(timeout_s):
            raise SpottyError(
                "no answer from Spotify within %d s: was the login finished in the browser? "
                "If the browser runs on another machine, it cannot reach 127.0.0.1 here "
                "(forward the port, e.g. `ssh -L %d:127.0.0.1:%d`)"
                % (timeout_s, self.port, self.port))
        assert self._server.params is not None
        return self._server.params


def code_from_callback(params: dict[str, str], state: str) -> str:
    """The authorization code, once the answer is known to be for this login."""
    if params.get("state") != state:
        # An answer for another login (or a forged one) says nothing about ours.
        raise SpottyError("the answer from the browser is not for this login (state mismatch); "
                          "nothing was stored: try again")
    error = params.get("error")
    if error == "access_denied":
        raise SpottyError("the Spotify login was refused in the browser (access_denied)")
    if error:
        raise SpottyError("Spotify refused the login: %s" % error)
    code = params.get("code")
    if not code:
        raise SpottyError("Spotify's answer has no authorization code")
    return code


# -- the token endpoint ---------------------------------------------------------------


def tls_context(ca: bytes | None = None) -> ssl.SSLContext:
    """The system's CA roots, or only `ca` (PEM or DER), e.g. a local mock's."""
    if ca is None:
        return ssl.create_default_context()
    try:
        text = ca.decode("ascii")
    except UnicodeDecodeError:
        return ssl.create_default_context(cadata=ca)
    return ssl.create_default_context(cadata=text)


def _post_form(url: str, form: dict, context: ssl.SSLContext) -> dict:
    request = urllib.request.Request(
        url, data=urlencode(form).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S, context=context) as answer:
            body = answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as e:
        raise SpottyError("Spotify refused the token request: %s" % _oauth_error(e)) from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SpottyError("cannot reach %s: %s" % (url, reason)) from e
    try:
        data = json.loads(body)
    except ValueError as e:
        raise SpottyError("the token endpoint %s did not answer JSON" % url) from e
    if not isinstance(data, dict):
        raise SpottyError("the token endpoint %s answered something else than a token" % url)
    return data


def _oauth_error(e: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(e.read(MAX_ANSWER_BYTES))
        return "%s (%s)" % (data["error"], data.get("error_description", ""))
    except (ValueError, KeyError, TypeError, OSError):
        return "HTTP %d" % e.code


def exchange_code(
    accounts_url: str, client_id: str, code: str, redirect: str, verifier: str,
    ca: bytes | None = None,
) -> dict:
    """POST /api/token for the code, as a public client: it names itself in the form and
    proves the login is its own with PKCE's verifier. No secret, no Authorization header:
    the refresh token is then bound to this flow and refreshed by the device with its
    client id alone."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    url = accounts_url.rstrip("/") + "/api/token"
    return _post_form(url, form, tls_context(ca))


# -- the stored login -----------------------------------------------------------------


@dataclass
class SpotifyToken:
    """What the login leaves for the device; `refresh_token` is never shown."""

    refresh_token: str = field(repr=False)
    issued_at: int
    client_id: str
    scope: str

    def to_json(self) -> bytes:
        return json.dumps({
            "refresh_token": self.refresh_token, "issued_at": self.issued_at,
            "client_id": self.client_id, "scope": self.scope,
        }, indent=2).encode()


def token_from_answer(answer: dict, client_id: str, now: float) -> SpotifyToken:
    refresh = answer.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise SpottyError("Spotify's answer holds no refresh token")
    scope = answer.get("scope")
    scope = scope if isinstance(scope, str) else SCOPES
    missing = set(SCOPES.split()) - set(scope.split())
    if missing:
        raise SpottyError("Spotify granted no %s: the device needs %s" % (
            " ".join(sorted(missing)), SCOPES))
    return SpotifyToken(refresh, int(now), client_id, scope)


def save_token(path: Path, token: SpotifyToken) -> None:
    """Atomically, 0600, in a 0700 directory."""
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    write_private(path, token.to_json())


def load_token(path: Path) -> SpotifyToken:
    try:
        data = json.loads(Path(path).read_text())
        return SpotifyToken(str(data["refresh_token"]), int(data["issued_at"]),
                            str(data["client_id"]), str(data.get("scope", SCOPES)))
    except FileNotFoundError as e:
        raise SpottyError("no Spotify login saved at %s: run `spotty spotify-login` first"
                          % path) from e
    except OSError as e:
        raise SpottyError("cannot read %s: %s" % (path, e.strerror)) from e
    except (ValueError, KeyError, TypeError) as e:
        raise SpottyError("%s is not a saved Spotify login: log in again" % path) from e


# -- the whole login ------------------------------------------------------------------


def login(
    client_id: str,
    *,
    port: int = DEFAULT_PORT,
    accounts_url: str = DEFAULT_ACCOUNTS_URL,
    ca: bytes | None = None,
    open_browser: Callable[[str], bool] | None = None,
    timeout_s: float = LOGIN_TIMEOUT_S,
    say: Callable[[str], None] = print,
    now: Callable[[], float] = time.time,
) -> SpotifyToken:
    """Run the browser login; the refresh token it yields. Nothing secret is said."""
    if not client_id.strip():
        raise SpottyError("a Spotify client id is needed (from developer.spotify.com)")
    verifier = new_code_verifier()
    state = secrets.token_urlsafe(16)
    with LoopbackReceiver(port, state) as receiver:
        url = authorize_url(accounts_url, client_id, receiver.redirect_uri, state,
                            code_challenge(verifier))
        say("Log in to Spotify in your browser. If it does not open, visit:\n  " + url)
        say("(%s must be a redirect URI of your app on developer.spotify.com)"
            % receiver.redirect_uri)
        (open_browser or webbrowser.open)(url)
        code = code_from_callback(receiver.wait(timeout_s), state)
        answer = exchange_code(accounts_url, client_id, code, receiver.redirect_uri, verifier,
                               ca)
    return token_from_answer(answer, client_id, now())


# -- handing a new token to a running device ------------------------------------------


def token_message(token: SpotifyToken, replace: bool = False) -> bytes:
    """replace: the device takes it even if the token it holds claims to be newer (one
    dated in the future would otherwise block every genuine push)."""
    message: dict[str, object] = {"refresh_token": token.refresh_token,
                                  "issued_at": token.issued_at}
    if replace:
        message["replace"] = True
    return json.dumps(message).encode()


def push_token(publish: Callable[..., object], thing: str, token: SpotifyToken,
               replace: bool = False) -> None:
    """Publish the token once to the device's own topic: QoS 1, not retained, so no
    later subscriber and no shadow reader ever sees it."""
    try:
        publish(TOKEN_TOPIC % thing, token_message(token, replace), qos=1)
    except SpottyError as e:
        raise SpottyError("cannot send the token to %s: %s" % (thing, e)) from e


def reported_token_issued_at(document: dict | None) -> object:
    state = (document or {}).get("state") or {}
    status = (state.get("reported") or {}).get("status") or {}
    return status.get("token_issued_at") if isinstance(status, dict) else None


def wait_for_device(
    get: Callable[[], dict | None], thing: str, issued_at: int, timeout_s: float,
    poll_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until the device reports that it stored the token (status.token_issued_at)."""
    deadline = clock() + timeout_s
    while reported_token_issued_at(get()) != issued_at:
        if clock() >= deadline:
            raise DeviceOffline(
                "%s has not confirmed the new token within %d s: it is probably offline "
                "(or refused the token). Run `spotty spotify-login --thing %s` again while "
                "the device is online (check with `spotty config get --thing %s`); if it "
                "refused it as older than the token it holds, add --replace"
                % (thing, timeout_s, thing, thing))
        sleep(poll_s)
