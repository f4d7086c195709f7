"""The mock of Spotify's accounts service (accounts.spotify.com): `/authorize` and
`/api/token` with the authorization-code (PKCE or client secret) and refresh-token grants.
It issues the access tokens the mock Web API accepts. Errors take the accounts service's
shape (RFC 6749); its HTML error page stands for the login page's refusals.

A refresh token is bound to the flow that issued it, as Spotify binds it: one from a
PKCE exchange (the client named by its id alone) refreshes only that way, and is refused
with the app's secret (invalid_grant); one from an exchange authenticated with the secret
needs the secret again (invalid_client).
"""

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from .mock_http import Reply, Request, oauth_error

SCOPES = "user-read-playback-state user-modify-playback-state"
CODE_LIFETIME_S = 600.0
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636, 4.1
PKCE, SECRET = "pkce", "secret"  # the flows a refresh token can come from


def _checked_flow(flow: str) -> str:
    if flow not in (PKCE, SECRET):
        raise ValueError("a refresh token's flow is %r or %r, not %r" % (PKCE, SECRET, flow))
    return flow


def _error_page(message: str) -> Reply:
    html = "<!DOCTYPE html><html><body><h1>Error</h1><p>%s</p></body></html>" % message
    return Reply(400, html.encode(), content_type="text/html; charset=utf-8")


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


@dataclass
class _Grant:
    redirect_uri: str
    challenge: str | None
    scope: str
    expires: float


class MockAccounts:
    """The accounts service's state: the client, the refresh token, the access tokens
    issued and the authorization codes not yet exchanged.

    Not locked by itself: MockSpotify calls it under its lock.
    """

    def __init__(self, client_id: str, client_secret: str | None, refresh_token: str,
                 rotate_refresh_tokens: bool, access_token_ttl: int,
                 refresh_token_flow: str = PKCE) -> None:
        self.client_id = client_id
        self.client_secret = client_secret  # the app's; None: every secret is wrong
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.access_token_ttl = access_token_ttl
        self._refresh_token = refresh_token
        self._refresh_flow = _checked_flow(refresh_token_flow)
        self._revoked = False
        self._scope = SCOPES
        self._access: dict[str, float] = {}  # access token -> monotonic expiry
        self._codes: dict[str, _Grant] = {}
        self._serial = 0

    def routes(self) -> dict:
        return {("GET", "/authorize"): self.authorize, ("POST", "/api/token"): self.token}

    @property
    def refresh_token(self) -> str:
        return self._refresh_token

    def access_expiry(self, token: str) -> float | None:
        """When an access token expires (monotonic), None if it was never issued."""
        return self._access.get(token)

    def expire_access_tokens(self) -> None:
        self._access = dict.fromkeys(self._access, 0.0)

    def revoke_refresh_token(self) -> None:
        self._revoked = True

    def accept_refresh_token(self, token: str, flow: str = PKCE) -> None:
        self._refresh_token = token
        self._refresh_flow = _checked_flow(flow)
        self._revoked = False

    def authorize(self, request: Request) -> Reply:
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

    def token(self, request: Request) -> Reply:
        form = request.body if request.form else {}
        grant = form.get("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            if not grant:
                return oauth_error("unsupported_grant_type", "grant_type parameter is missing")
            return oauth_error("unsupported_grant_type", "grant_type %s is not supported" % grant)
        flow, refused = self._client_flow(request, form)
        if refused:
            return refused
        if grant == "refresh_token":
            return self._refresh_grant(form, flow)
        return self._code_grant(form, flow)

    def _client_flow(self, request: Request, form: dict) -> tuple[str, Reply | None]:
        """How the client identified itself: with the app's secret (HTTP Basic, or in the
        form) or, a public PKCE client, by its id alone."""
        basic = _basic_credentials(request.headers.get("authorization", ""))
        client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id:
            return PKCE, oauth_error("invalid_client", "Invalid client")
        if secret is None:
            return PKCE, None
        if secret != self.client_secret:
            return SECRET, oauth_error("invalid_client", "Invalid client secret")
        return SECRET, None

    def _refresh_grant(self, form: dict, flow: str) -> Reply:
        token = form.get("refresh_token")
        if not token:
            return oauth_error("invalid_request", "refresh_token must be supplied")
        if token != self._refresh_token:
            return oauth_error("invalid_grant", "Invalid refresh token")
        if flow != self._refresh_flow:
            if flow == SECRET:  # a PKCE token is not the confidential client's
                return oauth_error("invalid_grant", "Invalid refresh token")
            return oauth_error("invalid_client", "Invalid client")
        if self._revoked:
            return oauth_error("invalid_grant", "Refresh token revoked")
        answer = self._issue_access_token()
        if self.rotate_refresh_tokens:
            self._refresh_token = answer["refresh_token"] = self._new_token("refresh")
        return Reply(200, answer)

    def _code_grant(self, form: dict, flow: str) -> Reply:
        grant = self._codes.pop(form.get("code", ""), None)  # a code is good for one try
        if grant is None or grant.expires < time.monotonic():
            return oauth_error("invalid_grant", "Invalid authorization code")
        if flow == PKCE and not grant.challenge:
            return oauth_error("invalid_client", "Invalid client")  # neither secret nor PKCE
        if form.get("redirect_uri") != grant.redirect_uri:
            return oauth_error("invalid_grant", "Invalid redirect URI")
        verifier = form.get("code_verifier", "")
        if grant.challenge and not (_VERIFIER.fullmatch(verifier)
                                    and s256(verifier) == grant.challenge):
            return oauth_error("invalid_grant", "code_verifier was incorrect")
        self._scope = grant.scope
        answer = self._issue_access_token()
        self._refresh_token = answer["refresh_token"] = self._new_token("refresh")
        self._refresh_flow = flow
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
