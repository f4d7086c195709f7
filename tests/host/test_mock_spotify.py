"""The mock Spotify on CPython: OAuth grants, the player API, faults, connections, the log."""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from host_tools.common.devicepath import REPO
from host_tools.spotify.mock import MockSpotify
from host_tools.spotify.mock_accounts import SECRET, s256

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PLAYLIST = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
REDIRECT = "http://127.0.0.1:8765/callback"


class Client:
    """One kept-alive HTTPS connection that trusts the mock's CA."""

    def __init__(self, mock):
        self.mock = mock
        self.context = ssl.create_default_context(cadata=mock.ca.cert_der)
        self.conn = http.client.HTTPSConnection("127.0.0.1", mock.port, context=self.context,
                                                timeout=5)
        self.token = None

    def call(self, method, target, body=None, headers=None, token=True):
        headers = dict(headers or {})
        if token and self.token:
            headers["Authorization"] = "Bearer " + self.token
        if isinstance(body, dict):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, target, body, headers)
        response = self.conn.getresponse()
        return response.status, response, response.read()

    def json(self, method, target, body=None, **kwargs):
        status, _, data = self.call(method, target, body, **kwargs)
        return status, json.loads(data) if data else None

    def token_request(self, fields, basic=None):
        headers = dict(FORM)
        if basic:
            pair = base64.b64encode(("%s:%s" % basic).encode()).decode()
            headers["Authorization"] = "Basic " + pair
        return self.json("POST", "/api/token", urlencode(fields), headers=headers, token=False)

    def login(self):
        status, answer = self.token_request({"grant_type": "refresh_token",
                                             "refresh_token": self.mock.refresh_token,
                                             "client_id": self.mock.client_id})
        assert status == 200, answer
        self.token = answer["access_token"]
        return answer


@pytest.fixture
def mock():
    with MockSpotify() as server:
        yield server


@pytest.fixture
def client(mock):
    c = Client(mock)
    c.login()
    mock.clear_log()
    yield c
    c.conn.close()


def refresh_fields(token, client_id="spotty-test-client"):
    fields = {"grant_type": "refresh_token", "refresh_token": token}
    if client_id:
        fields["client_id"] = client_id
    return fields


# -- token endpoint -------------------------------------------------------------------------

def test_public_client_refreshes_with_client_id_in_body(mock):
    status, answer = Client(mock).token_request(refresh_fields("refresh-0"))
    assert status == 200
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert answer["access_token"] and "user-modify-playback-state" in answer["scope"]
    assert "refresh_token" not in answer
    [entry] = mock.requests()
    assert entry["auth"] == "none" and entry["status"] == 200
    assert entry["body"] == {"grant_type": "refresh_token", "refresh_token": "refresh-0",
                             "client_id": "spotty-test-client"}


def test_a_pkce_refresh_token_is_refused_with_the_apps_secret():
    """Bound to the flow that issued it: the app's (right) secret does not make it the
    confidential client's."""
    with MockSpotify(client_id="web-app", client_secret="s3cret") as mock:
        client = Client(mock)
        status, answer = client.token_request(refresh_fields("refresh-0", None),
                                              basic=("web-app", "s3cret"))
        assert status == 400
        assert answer == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
        status, answer = client.token_request(dict(refresh_fields("refresh-0", "web-app"),
                                                   client_secret="s3cret"))
        assert (status, answer["error"]) == (400, "invalid_grant")  # the secret in the form
        assert client.token_request(refresh_fields("refresh-0", "web-app"))[0] == 200
        assert [r["auth"] for r in mock.requests()] == ["basic", "none", "none"]


def test_a_refresh_token_from_the_secret_flow_needs_the_secret():
    with MockSpotify(client_id="web-app", client_secret="s3cret",
                     refresh_token_flow=SECRET) as mock:
        client = Client(mock)
        fields = refresh_fields("refresh-0", client_id=None)
        assert client.token_request(fields, basic=("web-app", "s3cret"))[0] == 200
        status, answer = client.token_request(fields, basic=("web-app", "wrong"))
        assert status == 400
        assert answer == {"error": "invalid_client", "error_description": "Invalid client secret"}
        status, answer = client.token_request(refresh_fields("refresh-0", "web-app"))
        assert status == 400
        assert answer == {"error": "invalid_client", "error_description": "Invalid client"}


def test_an_unknown_flow_is_a_mistake_in_the_test():
    with pytest.raises(ValueError, match="flow"):
        MockSpotify(refresh_token_flow="basic")


@pytest.mark.parametrize("fields, basic", [
    (refresh_fields("refresh-0", "someone-else"), None),
    (refresh_fields("refresh-0", None), None),
    (refresh_fields("refresh-0", None), ("spotty-test-client", "a-secret-we-never-issued")),
])
def test_wrong_client_is_invalid_client(mock, fields, basic):
    status, answer = Client(mock).token_request(fields, basic)
    assert status == 400 and answer["error"] == "invalid_client"


def test_unknown_or_revoked_refresh_token_is_invalid_grant(mock):
    client = Client(mock)
    status, answer = client.token_request(refresh_fields("refresh-guess"))
    assert (status, answer["error"]) == (400, "invalid_grant")
    mock.revoke_refresh_token()
    status, answer = client.token_request(refresh_fields("refresh-0"))
    assert status == 400
    assert answer == {"error": "invalid_grant", "error_description": "Refresh token revoked"}
    mock.accept_refresh_token("refresh-from-flash")
    assert client.token_request(refresh_fields("refresh-from-flash"))[0] == 200


def test_missing_grant_type_is_unsupported_grant_type(mock):
    status, answer = Client(mock).token_request({"client_id": "spotty-test-client"})
    assert (status, answer["error"]) == (400, "unsupported_grant_type")


def test_rotation_hands_out_a_new_refresh_token_and_retires_the_old():
    with MockSpotify(rotate_refresh_tokens=True) as mock:
        client = Client(mock)
        status, answer = client.token_request(refresh_fields("refresh-0"))
        assert status == 200
        assert answer["refresh_token"] == mock.refresh_token != "refresh-0"
        status, again = client.token_request(refresh_fields("refresh-0"))
        assert (status, again["error"]) == (400, "invalid_grant")
        status, third = client.token_request(refresh_fields(answer["refresh_token"]))
        assert status == 200
        assert third["refresh_token"] not in ("refresh-0", answer["refresh_token"])


def test_without_rotation_the_answer_has_no_refresh_token_and_the_old_one_stays_good(mock):
    """Spotify's answer to a PKCE refresh since mid-2026."""
    client = Client(mock)
    for _ in range(3):
        status, answer = client.token_request(refresh_fields("refresh-0"))
        assert status == 200 and "refresh_token" not in answer


def test_access_token_lifetime_is_enforced():
    with MockSpotify(access_token_ttl=1) as mock:
        client = Client(mock)
        assert client.login()["expires_in"] == 1
        assert client.call("GET", "/v1/me/player")[0] == 204
        time.sleep(1.1)
        status, answer = client.json("GET", "/v1/me/player")
        assert status == 401 and answer["error"]["message"] == "The access token expired"


# -- authorization code flow ----------------------------------------------------------------

def authorize(client, **overrides):
    params = {"client_id": "spotty-test-client", "response_type": "code",
              "redirect_uri": REDIRECT, "state": "st4te", "scope": "user-read-playback-state",
              "code_challenge": s256("the-verifier" * 4), "code_challenge_method": "S256"}
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    status, response, body = client.call("GET", "/authorize?" + urlencode(params), token=False)
    return status, response.getheader("Location"), body


def code_from(location):
    parts = urlsplit(location)
    return parts, {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_authorize_redirects_back_with_code_and_state(mock):
    status, location, _ = authorize(Client(mock))
    assert status == 302
    parts, query = code_from(location)
    assert "%s://%s%s" % (parts.scheme, parts.netloc, parts.path) == REDIRECT
    assert query["state"] == "st4te" and len(query["code"]) > 20


def test_pkce_code_exchange_checks_the_verifier(mock):
    client = Client(mock)
    _, query = code_from(authorize(client)[1])
    exchange = {"grant_type": "authorization_code", "code": query["code"],
                "redirect_uri": REDIRECT, "client_id": "spotty-test-client"}
    status, answer = client.token_request(dict(exchange, code_verifier="not-the-verifier"))
    assert status == 400
    assert answer == {"error": "invalid_grant", "error_description": "code_verifier was incorrect"}

    _, query = code_from(authorize(client)[1])
    exchange["code"] = query["code"]
    status, answer = client.token_request(dict(exchange, code_verifier="the-verifier" * 4))
    assert status == 200, answer
    assert answer["refresh_token"] == mock.refresh_token != "refresh-0"
    assert answer["scope"] == "user-read-playback-state"
    client.token = answer["access_token"]
    assert client.call("GET", "/v1/me/player/devices")[0] == 200
    # A code is good for one exchange, and the new refresh token works.
    status, answer = client.token_request(dict(exchange, code_verifier="the-verifier" * 4))
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert client.token_request(refresh_fields(mock.refresh_token))[0] == 200


def test_code_exchange_needs_the_same_redirect_uri(mock):
    client = Client(mock)
    _, query = code_from(authorize(client)[1])
    status, answer = client.token_request({
        "grant_type": "authorization_code", "code": query["code"],
        "client_id": "spotty-test-client", "redirect_uri": "http://127.0.0.1:9999/elsewhere",
        "code_verifier": "the-verifier" * 4})
    assert status == 400 and answer["error_description"] == "Invalid redirect URI"


def test_confidential_code_exchange_without_pkce_needs_the_secret():
    with MockSpotify(client_id="web-app", client_secret="s3cret") as mock:
        client = Client(mock)
        overrides = {"client_id": "web-app", "code_challenge": None,
                     "code_challenge_method": None}
        _, query = code_from(authorize(client, **overrides)[1])
        exchange = {"grant_type": "authorization_code", "code": query["code"],
                    "redirect_uri": REDIRECT}
        status, answer = client.token_request(dict(exchange, client_id="web-app"))
        assert (status, answer["error"]) == (400, "invalid_client")
        _, query = code_from(authorize(client, **overrides)[1])
        exchange["code"] = query["code"]
        assert client.token_request(exchange, basic=("web-app", "s3cret"))[0] == 200


APP_SECRET = ("web-app", "s3cret")


@pytest.mark.parametrize("with_secret", [False, True])
def test_the_refresh_token_of_an_exchange_is_bound_to_how_the_client_authenticated(
        with_secret):
    """A PKCE exchange by id alone gives a token that refuses the secret; PKCE with the
    secret gives one that needs it."""
    with MockSpotify(client_id="web-app", client_secret="s3cret") as mock:
        client = Client(mock)
        _, query = code_from(authorize(client, client_id="web-app")[1])
        exchange = {"grant_type": "authorization_code", "code": query["code"],
                    "redirect_uri": REDIRECT, "code_verifier": "the-verifier" * 4}
        if with_secret:
            status, answer = client.token_request(exchange, basic=APP_SECRET)
        else:
            status, answer = client.token_request(dict(exchange, client_id="web-app"))
        assert status == 200, answer
        by_id = refresh_fields(answer["refresh_token"], "web-app")
        by_secret = refresh_fields(answer["refresh_token"], None)
        status, refused = (client.token_request(by_id) if with_secret
                           else client.token_request(by_secret, basic=APP_SECRET))
        assert status == 400
        assert refused["error"] == ("invalid_client" if with_secret else "invalid_grant")
        status, _ = (client.token_request(by_secret, basic=APP_SECRET) if with_secret
                     else client.token_request(by_id))
        assert status == 200


@pytest.mark.parametrize("verifier", ["short", "é" * 43, "x" * 129, "sp ace" * 8])
def test_a_malformed_code_verifier_is_refused_even_when_its_hash_matches(mock, verifier):
    client = Client(mock)
    _, query = code_from(authorize(client, code_challenge=s256_any(verifier))[1])
    status, answer = client.token_request({
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT,
        "client_id": "spotty-test-client", "code_verifier": verifier})
    assert status == 400
    assert answer == {"error": "invalid_grant", "error_description": "code_verifier was incorrect"}


def s256_any(text):
    digest = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize("overrides, message", [
    ({"client_id": "someone-else"}, b"INVALID_CLIENT: Invalid client"),
    ({"redirect_uri": "http://example.com/callback"}, b"INVALID_CLIENT: Insecure redirect URI"),
    ({"redirect_uri": "http://localhost:8765/callback"}, b"INVALID_CLIENT: Insecure redirect URI"),
])
def test_authorize_refuses_bad_client_or_redirect(mock, overrides, message):
    status, location, body = authorize(Client(mock), **overrides)
    assert status == 400 and location is None and message in body


def test_authorize_reports_a_bad_challenge_method_to_the_redirect(mock):
    status, location, _ = authorize(Client(mock), code_challenge_method="plain")
    _, query = code_from(location)
    assert status == 302 and query == {"error": "invalid_request", "state": "st4te"}


# -- the player API -------------------------------------------------------------------------

def test_api_needs_a_valid_bearer_token(mock, client):
    status, answer = client.json("GET", "/v1/me/player", token=False)
    assert status == 401 and answer["error"]["message"] == "No token provided"
    client.token = "made-up"
    assert client.json("GET", "/v1/me/player")[1]["error"]["message"] == "Invalid access token"
    client.login()
    assert client.call("GET", "/v1/me/player")[0] == 204
    mock.expire_access_tokens()
    status, response, body = client.call("GET", "/v1/me/player")
    assert status == 401
    assert json.loads(body) == {"error": {"status": 401, "message": "The access token expired"}}
    assert "invalid_token" in response.getheader("WWW-Authenticate")
    client.login()
    assert client.call("GET", "/v1/me/player")[0] == 204


def test_nothing_active_at_first(client):
    status, response, body = client.call("GET", "/v1/me/player")
    assert (status, body) == (204, b"")
    status, answer = client.json("GET", "/v1/me/player/devices")
    assert status == 200
    assert [(d["id"], d["name"], d["type"], d["is_active"]) for d in answer["devices"]] == [
        ("dev-bathroom-1", "Bathroom", "Speaker", False),
        ("dev-kitchen-1", "Kitchen", "Speaker", False),
        ("dev-tv-1", "Living Room TV", "TV", False),
        ("dev-phone-1", "Alice's iPhone", "Smartphone", False),
        ("dev-web-1", "Web Player (Chrome)", "Computer", False)]
    status, answer = client.json("PUT", "/v1/me/player/play")
    assert status == 404 and answer["error"]["reason"] == "NO_ACTIVE_DEVICE"
    status, answer = client.json("PUT", "/v1/me/player/pause")
    assert status == 404 and answer["error"]["reason"] == "NO_ACTIVE_DEVICE"


def test_player_state_is_full_size(mock, client):
    """GET /me/player carries a whole track object, as Spotify sends it without a market:
    album with images and markets, artists, ids. The firmware must read it at that size."""
    mock.set_playback("dev-bathroom-1", is_playing=True, context_uri=PLAYLIST)
    status, _, body = client.call("GET", "/v1/me/player")
    assert status == 200 and 3500 <= len(body) <= 6000, len(body)
    item = json.loads(body)["item"]
    assert [i["width"] for i in item["album"]["images"]] == [640, 300, 64]
    assert len(item["available_markets"]) > 150 and "SE" in item["album"]["available_markets"]
    assert item["artists"][0]["uri"].startswith("spotify:artist:")
    assert item["uri"] == "spotify:track:" + item["id"]


def test_play_pause_resume(mock, client):
    status, _ = client.json("PUT", "/v1/me/player/play?device_id=dev-bathroom-1",
                            {"context_uri": PLAYLIST})
    assert status == 204
    status, player = client.json("GET", "/v1/me/player?market=from_token")
    assert status == 200 and player == mock.playback() | {"timestamp": player["timestamp"],
                                                          "progress_ms": player["progress_ms"]}
    assert player["device"]["id"] == "dev-bathroom-1" and player["device"]["is_active"]
    assert player["is_playing"] and player["context"]["uri"] == PLAYLIST
    assert player["context"]["type"] == "playlist" and player["item"]["type"] == "track"
    assert {"shuffle_state", "repeat_state", "timestamp", "progress_ms"} <= set(player)

    assert client.call("PUT", "/v1/me/player/pause?device_id=dev-bathroom-1")[0] == 204
    assert mock.playback()["is_playing"] is False
    status, answer = client.json("PUT", "/v1/me/player/pause")
    assert status == 403 and answer["error"] == {
        "status": 403, "message": "Player command failed: Restriction violated",
        "reason": "UNKNOWN"}
    # Without a context the previous one resumes, on the active device.
    assert client.call("PUT", "/v1/me/player/play")[0] == 204
    assert mock.playback()["is_playing"] and mock.playback()["context"]["uri"] == PLAYLIST


def test_play_on_unknown_device_or_bad_uri_is_refused(mock, client):
    status, answer = client.json("PUT", "/v1/me/player/play?device_id=dev-nope",
                                 {"context_uri": PLAYLIST})
    assert status == 404 and answer["error"] == {
        "status": 404, "message": "Player command failed: No active device found",
        "reason": "NO_ACTIVE_DEVICE"}
    status, _ = client.json("PUT", "/v1/me/player/play?device_id=dev-bathroom-1",
                            {"context_uri": "not-a-uri"})
    assert status == 400
    status, _, _ = client.call("PUT", "/v1/me/player/play?device_id=dev-bathroom-1", "{oops",
                               {"Content-Type": "application/json"})
    assert status == 400
    assert mock.playback() is None


def test_play_track_uris(mock, client):
    uris = ["spotify:track:6rqhFgbbKwnb9MLmUQDhG6"]
    status, _ = client.json("PUT", "/v1/me/player/play?device_id=dev-kitchen-1", {"uris": uris})
    assert status == 204
    assert mock.playback()["item"]["uri"] == uris[0] and mock.playback()["context"] is None


def test_transfer_moves_playback(mock, client):
    mock.set_playback("dev-kitchen-1", is_playing=False, context_uri="spotify:album:x1")
    status, _ = client.json("PUT", "/v1/me/player", {"device_ids": ["dev-bathroom-1"],
                                                      "play": True})
    assert status == 204
    player = mock.playback()
    assert player["device"]["id"] == "dev-bathroom-1" and player["is_playing"]
    assert player["context"]["uri"] == "spotify:album:x1"
    active = [d["id"] for d in mock.devices() if d["is_active"]]
    assert active == ["dev-bathroom-1"]
    status, answer = client.json("PUT", "/v1/me/player", {"device_ids": ["dev-gone"]})
    assert status == 404 and answer["error"]["message"] == "Device not found"
    status, _ = client.json("PUT", "/v1/me/player", {"device_ids": ["dev-kitchen-1",
                                                                    "dev-bathroom-1"]})
    assert status == 400


def test_volume(mock, client):
    mock.set_playback("dev-bathroom-1", is_playing=True)
    assert client.call("PUT", "/v1/me/player/volume?volume_percent=35")[0] == 204
    target = "/v1/me/player/volume?volume_percent=70&device_id=dev-kitchen-1"
    assert client.call("PUT", target)[0] == 204
    volumes = {d["id"]: d["volume_percent"] for d in mock.devices()}
    assert [volumes[d] for d in ("dev-bathroom-1", "dev-kitchen-1", "dev-tv-1")] == [35, 70, 20]
    for bad in ("101", "-1", "loud"):
        assert client.call("PUT", "/v1/me/player/volume?volume_percent=" + bad)[0] == 400
    assert client.call("PUT", "/v1/me/player/volume")[0] == 400


def test_renamed_device_takes_the_playback_along(mock, client):
    mock.set_playback("dev-bathroom-1", is_playing=True, context_uri=PLAYLIST)
    mock.rename_device_id("dev-bathroom-1", "dev-bathroom-2")
    assert mock.playback()["device"]["id"] == "dev-bathroom-2"
    assert client.call("PUT", "/v1/me/player/pause?device_id=dev-bathroom-1")[0] == 404
    assert client.call("PUT", "/v1/me/player/pause?device_id=dev-bathroom-2")[0] == 204


def test_set_devices_fills_defaults_and_a_vanished_speaker_has_no_playback(mock, client):
    mock.set_playback("dev-bathroom-1", is_playing=True)
    mock.set_devices([{"id": "dev-kitchen-1", "name": "Kitchen", "volume_percent": 50}])
    status, answer = client.json("GET", "/v1/me/player/devices")
    assert answer["devices"] == [{
        "id": "dev-kitchen-1", "name": "Kitchen", "type": "Speaker", "is_active": False,
        "is_private_session": False, "is_restricted": False, "volume_percent": 50,
        "supports_volume": True}]
    assert client.call("GET", "/v1/me/player")[0] == 204 and mock.playback() is None


def test_unknown_path_and_wrong_method(client):
    status, answer = client.json("GET", "/v1/me/top/artists")
    assert status == 404 and answer == {"error": {"status": 404, "message": "Service not found"}}
    assert client.call("POST", "/v1/me/player/play", "")[0] == 405


# -- faults ---------------------------------------------------------------------------------

PLAY = "/v1/me/player/play?device_id=dev-bathroom-1"


def test_status_fault_defaults_times_and_no_state_change(mock, client):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "status", "status": 429, "times": 2})
    for _ in range(2):
        status, response, body = client.call("PUT", PLAY, {"context_uri": PLAYLIST})
        assert status == 429 and response.getheader("Retry-After") == "1"
        assert json.loads(body)["error"]["status"] == 429
        assert mock.playback() is None  # a faulted request changes nothing
    assert client.call("PUT", PLAY, {"context_uri": PLAYLIST})[0] == 204
    assert [(r["status"], r["fault"]) for r in mock.requests()] == [
        (429, "status"), (429, "status"), (204, None)]


@pytest.mark.parametrize("rule, status, reason, header", [
    ({"status": 429, "headers": {"Retry-After": "7"}}, 429, None, ("Retry-After", "7")),
    ({"status": 404}, 404, "NO_ACTIVE_DEVICE", None),
    ({"status": 403, "reason": "PREMIUM_REQUIRED"}, 403, "PREMIUM_REQUIRED", None),
    ({"status": 403}, 403, "UNKNOWN", None),
    ({"status": 503}, 503, None, None),
    ({"status": 401}, 401, None, ("WWW-Authenticate", None)),
    ({"status": 500, "body": {"error": {"status": 500, "message": "custom"}}}, 500, None, None),
])
def test_status_fault_bodies_look_like_spotify(mock, client, rule, status, reason, header):
    mock.inject(dict(rule, match="GET /v1/me/player", kind="status"))
    got, response, body = client.call("GET", "/v1/me/player")
    error = json.loads(body)["error"]
    assert got == status and error["status"] == status and error.get("reason") == reason
    if "body" in rule:
        assert error["message"] == "custom"
    if header:
        value = response.getheader(header[0])
        assert value is not None and (header[1] is None or value == header[1])


def test_slow_fault_delays_then_answers_normally(mock, client):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "slow", "delay": 0.6})
    start = time.monotonic()
    assert client.call("PUT", PLAY, {"context_uri": PLAYLIST})[0] == 204
    assert time.monotonic() - start >= 0.6
    assert mock.playback()["is_playing"]
    [entry] = mock.requests()
    assert (entry["status"], entry["fault"]) == (204, "slow")


def test_drop_fault_closes_without_an_answer(mock, client):
    mock.inject({"match": "GET /v1/me/player", "kind": "drop"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.call("GET", "/v1/me/player")
    [entry] = mock.requests()
    assert (entry["status"], entry["fault"]) == (None, "drop")


def raw_exchange(mock, request: bytes) -> bytes:
    context = ssl.create_default_context(cadata=mock.ca.cert_der)
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as plain:
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            chunks = []
            while True:
                try:
                    piece = tls.recv(65536)
                except (ssl.SSLError, ConnectionError):
                    break
                if not piece:
                    break
                chunks.append(piece)
            return b"".join(chunks)


def get_player_raw(token):
    return ("GET /v1/me/player HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Connection: close\r\n\r\n" % token).encode()


def test_garbage_fault_sends_non_http_then_closes(mock, client):
    mock.inject({"match": "GET /v1/me/player", "kind": "garbage"})
    data = raw_exchange(mock, get_player_raw(client.token))
    assert data and not data.startswith(b"HTTP/")
    [entry] = mock.requests()
    assert (entry["status"], entry["fault"]) == (None, "garbage")


def test_oversized_fault_is_valid_json_of_a_megabyte(mock, client):
    mock.inject({"match": "GET /v1/me/player", "kind": "oversized"})
    status, response, body = client.call("GET", "/v1/me/player")
    assert status == 200 and len(body) >= 1 << 20
    assert isinstance(json.loads(body), dict)
    assert client.call("GET", "/v1/me/player")[0] == 204  # the connection is still good


def test_bad_json_fault(mock, client):
    mock.inject({"match": "GET /v1/me/player", "kind": "bad_json"})
    status, response, body = client.call("GET", "/v1/me/player")
    assert status == 200 and response.getheader("Content-Type").startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(body)


def test_truncated_fault_sends_less_than_announced(mock, client):
    mock.inject({"match": "PUT /v1/me/player/play", "kind": "truncated"})
    with pytest.raises(http.client.IncompleteRead):
        client.call("PUT", PLAY, {"context_uri": PLAYLIST})
    assert mock.playback() is None
    assert [(r["status"], r["fault"]) for r in mock.requests()] == [(200, "truncated")]


def test_faults_on_one_endpoint_apply_in_order(mock, client):
    for kind in ("bad_json", "oversized"):
        mock.inject({"match": "GET /v1/me/player", "kind": kind})
    client.call("GET", "/v1/me/player")
    client.call("GET", "/v1/me/player")
    assert client.call("GET", "/v1/me/player/devices")[0] == 200  # other endpoints unaffected
    client.call("GET", "/v1/me/player")
    assert [r["fault"] for r in mock.requests()] == ["bad_json", "oversized", None, None]


@pytest.mark.parametrize("rule", [
    {"match": "/v1/me/player", "kind": "drop"},
    {"match": "GET /v1/me/player?x=1", "kind": "drop"},
    {"match": "GET /v1/me/player", "kind": "explode"},
    {"match": "GET /v1/me/player", "kind": "status"},
    {"match": "GET /v1/me/player", "kind": "drop", "times": 0},
])
def test_inject_rejects_bad_rules(mock, rule):
    with pytest.raises(ValueError):
        mock.inject(rule)


# -- connections ----------------------------------------------------------------------------

def test_keepalive_reuses_one_connection(mock, client):
    for _ in range(3):
        status, response, _ = client.call("GET", "/v1/me/player/devices")
        assert status == 200 and response.getheader("Connection") != "close"
    assert len({r["conn"] for r in mock.requests()}) == 1
    assert mock.connections == 1


def test_without_keepalive_every_answer_closes():
    with MockSpotify(keepalive=False) as mock:
        client = Client(mock)
        client.login()
        for _ in range(2):
            status, response, _ = client.call("GET", "/v1/me/player/devices")
            assert status == 200 and response.getheader("Connection") == "close"
        assert len({r["conn"] for r in mock.requests()}) == 3 == mock.connections


def test_close_connections_drops_idle_keepalive(mock, client):
    client.call("GET", "/v1/me/player/devices")
    mock.close_connections()
    time.sleep(0.1)
    client.conn.sock.settimeout(2)
    assert client.conn.sock.recv(1) == b""  # the server side is gone


def test_chunked_bodies():
    with MockSpotify(chunked=True) as mock:
        client = Client(mock)
        client.login()
        status, response, body = client.call("GET", "/v1/me/player/devices")
        assert status == 200 and response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        assert len(json.loads(body)["devices"]) == len(mock.devices()) == 5
        assert client.call("PUT", PLAY, {"context_uri": PLAYLIST})[0] == 204  # 204: no body
        raw = raw_exchange(mock, get_player_raw(client.token))
        head, _, framed = raw.partition(b"\r\n\r\n")
        assert framed.startswith(b"80\r\n") and framed.endswith(b"\r\n0\r\n\r\n")
        assert framed.count(b"\r\n80\r\n") >= 2  # several chunks of CHUNK_SIZE


def test_untrusted_client_never_reaches_http(mock):
    stranger = ssl.create_default_context()  # the system roots, not the mock's CA
    conn = http.client.HTTPSConnection("127.0.0.1", mock.port, context=stranger, timeout=5)
    with pytest.raises(ssl.SSLError):
        conn.request("GET", "/v1/me/player")
    assert mock.requests() == [] and mock.connections == 0


def test_concurrent_clients_are_all_logged(mock):
    token = Client(mock).login()["access_token"]
    mock.clear_log()

    def worker(n):
        client = Client(mock)
        client.token = token
        for i in range(5):
            target = "/v1/me/player/volume?volume_percent=%d&device_id=dev-kitchen-1" % (n + i)
            assert client.call("PUT", target)[0] == 204

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log = mock.requests()
    assert len(log) == 30 and all(r["status"] == 204 for r in log)
    assert [r["t"] for r in log] == sorted(r["t"] for r in log)


# -- the log --------------------------------------------------------------------------------

def test_request_log_entries(mock, client):
    before = time.monotonic()
    client.call("PUT", "/v1/me/player/play?device_id=dev-bathroom-1", {"context_uri": PLAYLIST})
    client.call("PUT", "/v1/me/player/pause?device_id=dev-bathroom-1", "")
    first, second = mock.requests()
    assert before <= first["t"] <= second["t"] <= time.monotonic()
    keys = ("method", "path", "query", "body", "status", "auth", "fault")
    assert {k: first[k] for k in keys} == {
        "method": "PUT", "path": "/v1/me/player/play", "query": {"device_id": "dev-bathroom-1"},
        "body": {"context_uri": PLAYLIST}, "status": 204, "auth": "bearer", "fault": None}
    assert second["body"] is None and second["path"] == "/v1/me/player/pause"
    mock.requests()[0]["status"] = 999  # a copy: the log itself is untouched
    assert mock.requests()[0]["status"] == 204
    mock.clear_log()
    assert mock.requests() == []


# -- `spotty mock-spotify` ------------------------------------------------------------------

def test_cli_serves_until_interrupted(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "mock-spotify", "--port", "0",
         "--state-dir", str(tmp_path / "state")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["client_id"] == "spotty-test-client"
        assert info["hint"] == "export SPOTIFY_REFRESH_TOKEN=refresh-0"
        ca = Path(info["ca"])
        assert ca == tmp_path / "state" / "ca.pem" and (ca.parent / "ca.der").exists()
        port = urlsplit(info["url"]).port
        context = ssl.create_default_context(cafile=str(ca))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        conn.request("GET", "/v1/me/player")
        assert conn.getresponse().status == 401
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_tls_delay_holds_each_new_handshake_and_nothing_else():
    """The modelled ESP32 (make bench): each new TLS connection takes the delay longer; a
    request on a kept-alive connection does not."""
    with MockSpotify(tls_delay_ms=400) as mock:
        client = Client(mock)
        started = time.monotonic()
        client.login()  # a new connection: one handshake
        first = time.monotonic() - started
        started = time.monotonic()
        assert client.call("GET", "/v1/me/player/devices")[0] == 200
        again = time.monotonic() - started
        started = time.monotonic()
        assert Client(mock).call("GET", "/v1/me/player/devices", token=False)[0] == 401
        second = time.monotonic() - started
    assert first >= 0.4 and second >= 0.4, (first, second)
    assert again < 0.2, again
    assert mock.connections == 2


def test_an_answer_with_a_body_comes_without_a_delayed_ack_stall(mock, client):
    """Headers and body leave at once, as from a production server (TCP_NODELAY): Nagle's
    algorithm would hold the body until the client's delayed ACK, some 40 ms."""
    client.login()
    times = []
    for _ in range(5):
        started = time.monotonic()
        assert client.call("GET", "/v1/me/player/devices")[0] == 200
        times.append(time.monotonic() - started)
    assert min(times) < 0.03, times  # a stall would hold every one; load, only some
